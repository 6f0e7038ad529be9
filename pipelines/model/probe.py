"""A linear probe on each item's pooled tower vectors, mixed with the fusion transformer's logits.

Why: on held-out families (ways of violating that training never saw) the fusion
transformer fits the training families' tokens closely, and a strongly L2-regularised
logistic regression on two pooled vectors per item generalises better (docs/models.md,
Measured: on the selection lake violence went from 0.78-0.80 ROC AUC with the fusion alone
to 0.87 mixed, its image positives from 0.75-0.81 to 0.90-0.92). The probe reads

- the item's mean text token (pooled tower states + sentence vector), minus its language's
  offset (below), standardised per feature with the training rows' statistics, times
  ``TEXT_SCALE``;
- the mean of all its image tokens (every grid cell of every image: the global average of
  EfficientNet's last feature map, activations in [0, 6]), times ``IMAGE_SCALE``;

zeros where an item has no text or no image. The scales set how hard the L2 penalty
shrinks each side. It is fitted once, convexly (L-BFGS, class-balanced log loss + L2 with
strength ``1 / C`` as in scikit-learn's ``LogisticRegression``), before the fusion.

Language centring: multilingual sentence vectors carry a per-language component (every text
of one language is shifted the same way), so a head's scores in one language sit above or
below another's and pooled ranking suffers even where each language ranks well alone. Each
training language's mean text vector, shrunk towards the global mean by
``LANGUAGE_PRIOR_ROWS`` pseudo-rows, minus the global mean is that language's offset; it is
subtracted from the text of items in that language (the item's ``language`` column) before
standardising, and from every text token the fusion transformer reads
(:meth:`LinearProbe.centre_tokens`). An item whose language training never saw (or that has
none) gets no shift.
On the selection lake this raised violence from 0.872 to 0.893 ROC AUC (its text positives
from 0.84 to 0.87) and misinformation from 0.966 to 0.987 (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

TEXT_SCALE = 0.1
IMAGE_SCALE = 0.1
LANGUAGE_PRIOR_ROWS = 20.0  # a language's mean counts this many rows of the global mean


def language_index(languages: Sequence[str | None] | None, known: Sequence[str], n: int) -> torch.Tensor:
    """``[n]`` long: each item's position in ``known``, -1 where absent or unknown (no shift)."""
    if languages is None:
        return torch.full((n,), -1, dtype=torch.long)
    pos = {lang: i for i, lang in enumerate(known)}
    return torch.tensor([pos.get(lang, -1) if lang else -1 for lang in languages], dtype=torch.long)


class LinearProbe(nn.Module):
    """Per-head logits from the pooled text and image vectors of each item."""

    text_mean: torch.Tensor
    text_std: torch.Tensor
    language_offset: torch.Tensor

    def __init__(self, text_dim: int, image_dim: int, n_outputs: int, languages: Sequence[str] = ()) -> None:
        super().__init__()
        self.languages = tuple(languages)
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_std", torch.ones(text_dim))
        # One row per known language (saved with the weights; the codes live in the config).
        # Not saved when there are none, so versions saved before language centring still load.
        self.register_buffer(
            "language_offset", torch.zeros(len(self.languages), text_dim), persistent=bool(self.languages)
        )
        self.linear = nn.Linear(text_dim + image_dim, n_outputs)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def pooled(self, text: list[torch.Tensor], images: list[torch.Tensor]) -> torch.Tensor:
        """``[n, text_dim + image_dim]``: the raw mean text token and mean image token (zeros if absent)."""
        dev, dtype = self.linear.weight.device, self.linear.weight.dtype
        n = len(text)
        t_dim = self.text_mean.shape[0]
        out = torch.zeros((n, self.linear.in_features), device=dev, dtype=dtype)
        for i, (t, im) in enumerate(zip(text, images, strict=True)):
            if t.shape[0]:
                out[i, :t_dim] = t[0].to(dev, dtype)
            if im.shape[0]:
                out[i, t_dim:] = im.to(dev, dtype).mean(dim=0)
        return out

    def centred(self, text: torch.Tensor, lang: torch.Tensor | None) -> torch.Tensor:
        """Text vectors minus their language's offset (``lang``: indices into ``languages``, -1: none)."""
        if lang is None or not self.languages:
            return text
        lang = lang.to(text.device)
        offset = self.language_offset.to(text.dtype)[lang.clamp(min=0)]
        return text - offset * lang.ge(0).unsqueeze(1).to(text.dtype)

    def centre_tokens(self, text: list[torch.Tensor], languages: Sequence[str | None] | None) -> list[torch.Tensor]:
        """Every token of each item's text ``[t_i, text_dim]`` minus the item's language offset."""
        if languages is None or not self.languages:
            return text
        lang = language_index(languages, self.languages, len(text)).tolist()
        off = self.language_offset
        return [
            t - off[i].to(t.device, t.dtype) if i >= 0 and t.shape[0] else t for t, i in zip(text, lang, strict=True)
        ]

    def features(self, pooled: torch.Tensor, lang: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled probe inputs of pooled vectors (text language-centred and standardised; a missing side stays zero)."""
        t_dim = self.text_mean.shape[0]
        text, image = pooled[:, :t_dim], pooled[:, t_dim:]
        has_text = text.ne(0).any(dim=1, keepdim=True)
        z = torch.where(has_text, (self.centred(text, lang) - self.text_mean) / self.text_std, torch.zeros_like(text))
        return torch.cat([z * TEXT_SCALE, image * IMAGE_SCALE], dim=1)

    def forward(
        self, text: list[torch.Tensor], images: list[torch.Tensor], languages: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        lang = language_index(languages, self.languages, len(text))
        return self.linear(self.features(self.pooled(text, images), lang))  # type: ignore[no-any-return]


def fit_language_offsets(probe: LinearProbe, text: torch.Tensor, lang: torch.Tensor) -> None:
    """Set each known language's offset from training text vectors ``[n, text_dim]`` (rows with text only).

    offset = (sum of the language's vectors + LANGUAGE_PRIOR_ROWS x global mean) /
    (its rows + LANGUAGE_PRIOR_ROWS) - global mean: a language with few rows moves little.
    """
    probe.language_offset.zero_()
    if not probe.languages or text.shape[0] == 0:
        return
    glob = text.mean(dim=0)
    for i in range(len(probe.languages)):
        rows = text[lang == i]
        mean = (rows.sum(dim=0) + LANGUAGE_PRIOR_ROWS * glob) / (rows.shape[0] + LANGUAGE_PRIOR_ROWS)
        probe.language_offset[i] = mean - glob


def fit_probe(
    probe: LinearProbe,
    pooled: torch.Tensor,
    y: torch.Tensor,
    known: torch.Tensor,
    *,
    c: float,
    lang: torch.Tensor | None = None,
    max_iter: int = 500,
) -> None:
    """Fit ``probe`` on pooled vectors ``[n, d]``, labels ``y`` / mask ``known`` ``[n, heads]`` (float 0/1).

    ``lang``: ``[n]`` indices into ``probe.languages`` (-1: none; see :func:`language_index`);
    the language offsets are fitted first, then the text statistics on centred vectors.
    Per head: sum over known rows of class-balanced log loss (weights n / (2 n_class)) plus
    ``||w||^2 / (2c)`` (the bias is not penalised). Heads are independent; one L-BFGS solves all.
    """
    t_dim = probe.text_mean.shape[0]
    lang = lang if lang is not None else torch.full((pooled.shape[0],), -1, dtype=torch.long)
    text = pooled[:, :t_dim]
    has_text = text.ne(0).any(dim=1)
    fit_language_offsets(probe, text[has_text], lang[has_text])
    centred = probe.centred(text, lang)
    if int(has_text.sum()) > 1:
        probe.text_mean.copy_(centred[has_text].mean(dim=0))
        probe.text_std.copy_(centred[has_text].std(dim=0) + 1e-3)
    x = probe.features(pooled, lang).detach()
    n_pos = (y * known).sum(0)
    n_neg = ((1 - y) * known).sum(0)
    n = known.sum(0)
    # Balanced weights; a head with no positive (or no negative) in training is left at zero.
    w_pos = torch.where(n_pos > 0, n / (2 * n_pos.clamp(min=1)), torch.zeros_like(n))
    w_neg = torch.where(n_neg > 0, n / (2 * n_neg.clamp(min=1)), torch.zeros_like(n))
    usable = (n_pos > 0) & (n_neg > 0)
    weight = known * (y * w_pos + (1 - y) * w_neg) * usable
    lin = probe.linear
    opt = torch.optim.LBFGS(
        lin.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = lin(x)
        loss = (nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight).sum()
        loss = loss + (lin.weight**2).sum() / (2 * c)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        opt.step(closure)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        lin.weight[~usable] = 0.0
        lin.bias[~usable] = 0.0
