"""The trained part of the starter model: a small transformer over packed per-item tokens.

Each item is one variable-length sequence: a learned [CLS] token, its pooled text tokens
(mean + segments) and its image tokens (grid cells of each image or keyframe). Sequences
are packed ``[total_tokens, d]`` with FlashAttention-style ``cu_seqlens``, so no padding is
computed; attention goes through ``kernels.fused_attention_varlen`` (the Triton kernel on
GPU) at inference, and through a batched torch SDPA equivalent while training (autograd)
or when the kernels package is absent. One sigmoid head per policy head reads [CLS]; with
``probe_weight > 0`` its logits are mixed with a linear probe on the item's pooled vectors
(:mod:`pipelines.model.probe`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import nn

from pipelines.model.probe import LinearProbe
from pipelines.model.starter_config import FusionConfig

# Token types: what a position holds.
CLS, TEXT_MEAN, TEXT_SEGMENT, IMAGE = 0, 1, 2, 3


def _kernel_varlen() -> Callable[..., torch.Tensor] | None:
    try:
        from kernels import fused_attention_varlen
    except ImportError:
        return None
    return fused_attention_varlen  # type: ignore[no-any-return]


def varlen_attention_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int
) -> torch.Tensor:
    """Packed ``[total, heads, dim]`` attention, one batched SDPA call over a padded view (differentiable)."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    n_seq = lengths.shape[0]
    seq = torch.repeat_interleave(torch.arange(n_seq, device=q.device), lengths)
    pos = torch.arange(q.shape[0], device=q.device) - cu_seqlens[:-1].long()[seq]
    padded = []
    for t in (q, k, v):
        p = t.new_zeros((n_seq, max_seqlen, *t.shape[1:]))
        padded.append(p.index_put((seq, pos), t).transpose(1, 2))  # [n_seq, heads, L, dim]
    mask = torch.arange(max_seqlen, device=q.device)[None, :] < lengths[:, None]
    qp, kp, vp = padded
    out = nn.functional.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask[:, None, None, :])
    return out.transpose(1, 2)[seq, pos]


def varlen_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int
) -> torch.Tensor:
    """The Triton kernel on CUDA (or under the interpreter) at inference; the torch version otherwise.

    On a CPU without the interpreter the kernels package would itself fall back to one SDPA
    call per sequence; the batched torch version here computes the same thing faster.
    """
    fused = _kernel_varlen()
    use_kernel = q.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"
    if fused is not None and use_kernel and not (torch.is_grad_enabled() and q.requires_grad):
        return fused(q, k, v, cu_seqlens.to(torch.int32), int(max_seqlen))
    return varlen_attention_torch(q, k, v, cu_seqlens, max_seqlen)


class _Block(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        total, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(total, 3, self.n_heads, d // self.n_heads).unbind(1)
        attn = varlen_attention(q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens, max_seqlen)
        x = x + self.drop(self.proj(attn.reshape(total, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class FusionHead(nn.Module):
    """Projects tower tokens, runs the fusion blocks on packed sequences, scores heads from [CLS]."""

    def __init__(self, cfg: FusionConfig, n_outputs: int) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.text_in = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.image_in = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, d))
        self.cls = nn.Parameter(torch.zeros(d))
        self.type_emb = nn.Embedding(4, d)
        self.image_slot_emb = nn.Embedding(cfg.max_images, d)
        self.grid_emb = nn.Embedding(cfg.grid_tokens, d)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, n_outputs)
        nn.init.normal_(self.cls, std=0.02)
        self.probe = (
            LinearProbe(cfg.text_dim, cfg.image_dim, n_outputs, cfg.probe_languages) if cfg.probe_weight > 0 else None
        )

    def forward(
        self, text: list[torch.Tensor], images: list[torch.Tensor], languages: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """Logits ``[n_items, n_outputs]``: the transformer's, mixed with the probe's when there is one.

        text[i]: ``[t_i, text_dim]`` (mean token first, then segments; t_i may be 0).
        images[i]: ``[m_i * grid_tokens, image_dim]`` (images in order; m_i may be 0).
        languages[i]: the item's language code (its text tokens are centred by it), or None.
        """
        text = self.centre(text, languages)
        logits = self.transformer_logits(text, images)
        if self.probe is None:
            return logits
        w = self.cfg.probe_weight
        return (1 - w) * logits + w * self.probe(text, images).to(logits.dtype)

    def centre(self, text: list[torch.Tensor], languages: Sequence[str | None] | None) -> list[torch.Tensor]:
        """Text tokens minus their item's language offset (fitted with the probe; none without one)."""
        return text if self.probe is None else self.probe.centre_tokens(text, languages)

    def transformer_parameters(self) -> list[nn.Parameter]:
        """What :func:`~pipelines.model.train.fit_fusion` trains (everything but the probe)."""
        skip = {id(p) for p in self.probe.parameters()} if self.probe is not None else set()
        return [p for p in self.parameters() if id(p) not in skip]

    def transformer_logits(self, text: list[torch.Tensor], images: list[torch.Tensor]) -> torch.Tensor:
        """Logits of the transformer alone (what the fusion is trained on)."""
        cfg = self.cfg
        dev = self.cls.device
        n = len(text)
        t_len = torch.tensor([t.shape[0] for t in text], dtype=torch.long)
        i_len = torch.tensor([im.shape[0] for im in images], dtype=torch.long)
        lengths = 1 + t_len + i_len
        cu = torch.zeros(n + 1, dtype=torch.long)
        cu[1:] = torch.cumsum(lengths, 0)
        total = int(cu[-1])
        x = torch.zeros((total, cfg.d_model), device=dev, dtype=self.cls.dtype)
        starts = cu[:-1]
        x[starts.to(dev)] = self.cls + self.type_emb.weight[CLS]

        if int(t_len.sum()):
            tt = torch.cat(text).to(dev, self.cls.dtype)
            seq = torch.repeat_interleave(torch.arange(n), t_len)
            offs = torch.arange(tt.shape[0]) - torch.repeat_interleave(torch.cumsum(t_len, 0) - t_len, t_len)
            types = torch.where(offs == 0, TEXT_MEAN, TEXT_SEGMENT).to(dev)
            x[(starts[seq] + 1 + offs).to(dev)] = self.text_in(tt) + self.type_emb(types)
        if int(i_len.sum()):
            ii = torch.cat(images).to(dev, self.cls.dtype)
            seq = torch.repeat_interleave(torch.arange(n), i_len)
            offs = torch.arange(ii.shape[0]) - torch.repeat_interleave(torch.cumsum(i_len, 0) - i_len, i_len)
            slot = (offs // cfg.grid_tokens).clamp(max=cfg.max_images - 1).to(dev)
            cell = (offs % cfg.grid_tokens).to(dev)
            emb = self.type_emb.weight[IMAGE] + self.image_slot_emb(slot) + self.grid_emb(cell)
            x[(starts[seq] + 1 + t_len[seq] + offs).to(dev)] = self.image_in(ii) + emb

        cu_dev = cu.to(dev, torch.int32)
        max_len = int(lengths.max()) if n else 0
        for block in self.blocks:
            x = block(x, cu_dev, max_len)
        return self.out(self.norm(x[starts.to(dev)]))
