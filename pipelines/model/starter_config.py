"""The torch-free half of the starter model: its configuration and its preprocessor.

Drivers and preprocessing workers import only this module, so they build a starter model's
preprocessor from a saved folder (tokenizer and config, no weights) without paying for
torch and transformers. :mod:`pipelines.model.starter` holds the weights and the scoring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.model.decode import DecodeConfig, RowFault, decode_batch
from pipelines.model.interface import PreparedBatch, Preprocessor, RowError

TEXT_TOWER_DIR = "text_tower"
SENTENCE_TOWER_DIR = "sentence_tower"
SENTENCE_VECTORS = ("", "use")
SENTENCE_MAX_TOKENS = 1024  # tokens of a text the sentence vector reads (its cost is linear in them)


@dataclass(frozen=True)
class FusionConfig:
    """Shape of the fusion transformer.

    d_model / n_layers / n_heads / d_ff: the transformer; d_model must divide by n_heads.
    text_dim / image_dim: widths of the frozen towers' pooled tokens.
    max_images: image slots per item (cover image + keyframes); grid_tokens: tokens per image.
    dropout: training only.
    probe_weight: share of a linear probe on the pooled vectors in the logits
        (``(1 - w) * transformer + w * probe``, see :mod:`pipelines.model.probe`); 0: no probe.
    probe_languages: language codes whose text offset the probe subtracts (set by training
        from its rows' languages; an item in any other language is not shifted).
    """

    text_dim: int = 384
    image_dim: int = 1280
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    max_images: int = 5
    grid_tokens: int = 4
    dropout: float = 0.1
    probe_weight: float = 0.85
    probe_languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "probe_languages", tuple(self.probe_languages))
        if len(set(self.probe_languages)) != len(self.probe_languages) or not all(
            isinstance(code, str) and 0 < len(code) <= 35 for code in self.probe_languages
        ):
            raise ValueError(f"probe_languages must be unique codes of 1 to 35 characters, got {self.probe_languages}")
        if not 0.0 <= self.probe_weight < 1.0:
            raise ValueError(f"probe_weight must be in [0, 1), got {self.probe_weight}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("text_dim", "image_dim", "d_model", "n_layers", "n_heads", "d_ff", "max_images", "grid_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class StarterConfig:
    """Inputs, batching and fusion shape of the starter model.

    image_size: side (px) images and keyframes are resized to for EfficientNet-Lite0.
    max_frames: images per item (a cover image takes one slot), keyframes sampled uniformly.
    image_grid: the feature map is pooled to grid x grid tokens per image.
    text_window: tokens per text-tower window (specials included); longer texts get more windows.
    text_segments: segment tokens per text besides its mean token.
    text_prefix: prepended to every non-empty text before tokenizing (e5: ``"query: "``).
    sentence_vector: "use" appends a USE-multilingual sentence vector (512) of the whole
        text to every text token (``fusion.text_dim`` = tower width + 512); "" for none.
    token_budget / max_batch_rows: a text micro-batch holds at most this many padded tokens / rows.
    max_padding: a text micro-batch is closed before its padding share would pass this.
    fusion: the trained transformer's shape.
    """

    image_size: int = 128
    max_frames: int = 4
    image_grid: int = 2
    text_window: int = 256
    text_segments: int = 4
    text_prefix: str = ""
    sentence_vector: str = ""
    token_budget: int = 4096
    max_batch_rows: int = 128
    max_padding: float = 0.10
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"image_size must be in [32, 512], got {self.image_size}")
        if not 1 <= self.max_frames <= 16:
            raise ValueError(f"max_frames must be in [1, 16], got {self.max_frames}")
        if not 1 <= self.image_grid <= 4:
            raise ValueError(f"image_grid must be in [1, 4], got {self.image_grid}")
        if not 8 <= self.text_window <= 512:
            raise ValueError(f"text_window must be in [8, 512], got {self.text_window}")
        if not 1 <= self.text_segments <= 32:
            raise ValueError(f"text_segments must be in [1, 32], got {self.text_segments}")
        if self.sentence_vector not in SENTENCE_VECTORS:
            raise ValueError(f"sentence_vector must be one of {SENTENCE_VECTORS}, got '{self.sentence_vector}'")
        if len(self.text_prefix) > 64:
            raise ValueError(f"text_prefix must be at most 64 characters, got {len(self.text_prefix)}")
        if self.token_budget < self.text_window:
            raise ValueError(f"token_budget ({self.token_budget}) must be >= text_window ({self.text_window})")
        if self.max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {self.max_batch_rows}")
        if self.fusion.grid_tokens != self.image_grid**2 or self.fusion.max_images < self.max_frames:
            raise ValueError("fusion.grid_tokens must be image_grid**2 and fusion.max_images >= max_frames")

    def decode_config(self) -> DecodeConfig:
        return DecodeConfig(image_size=self.image_size, max_frames=self.max_frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StarterConfig:
        # Versions saved before the probe existed have no probe_weight: they have no probe.
        fusion = {"probe_weight": 0.0, **d.get("fusion", {})}
        return cls(**{**d, "fusion": FusionConfig(**fusion)})


class StarterPreprocessor(Preprocessor):
    """Decode media (shared rules), tokenize text into windows; holds the tokenizer JSON, no weights."""

    def __init__(self, tokenizer_json: str, cfg: StarterConfig, sentence_tokenizer_json: str | None = None) -> None:
        if bool(cfg.sentence_vector) != (sentence_tokenizer_json is not None):
            raise ValueError("a sentence vector needs its tokenizer, and a sentence tokenizer needs sentence_vector")
        self.tokenizer_json = tokenizer_json
        self.sentence_tokenizer_json = sentence_tokenizer_json
        self.cfg = cfg
        self._tok: Any = None
        self._sentence_tok: Any = None
        self._specials: tuple[list[int], list[int]] = ([], [])

    def __getstate__(self) -> dict[str, Any]:
        return {
            "tokenizer_json": self.tokenizer_json,
            "cfg": self.cfg,
            "sentence_tokenizer_json": self.sentence_tokenizer_json,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tokenizer_json"], state["cfg"], state.get("sentence_tokenizer_json"))  # type: ignore[misc]

    def sentence_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` for the sentence vector (``<s> .. </s>``, at most SENTENCE_MAX_TOKENS)."""
        if self._sentence_tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self.sentence_tokenizer_json or "")
            tok.no_truncation()
            tok.no_padding()
            self._sentence_tok = tok
        ids: list[int] = self._sentence_tok.encode(text).ids if text else []
        return ids if len(ids) <= SENTENCE_MAX_TOKENS else ids[: SENTENCE_MAX_TOKENS - 1] + ids[-1:]

    def _tokenizer(self) -> Any:
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self.tokenizer_json)
            tok.no_truncation()  # windows are cut here, so no text is silently dropped
            tok.no_padding()
            # The special tokens the tokenizer's template wraps a sequence in ([CLS] .. [SEP], <s> .. </s>).
            empty = tok.encode("", add_special_tokens=True).ids
            self._specials = (empty[:1], empty[1:]) if empty else ([], [])
            self._tok = tok
        return self._tok

    def windows(self, text: str) -> list[list[int]]:
        """Token-id windows of ``text``, each wrapped in the tokenizer's special tokens."""
        tok = self._tokenizer()
        if not text:
            return []
        ids = tok.encode(self.cfg.text_prefix + text, add_special_tokens=False).ids
        head, tail = self._specials
        step = self.cfg.text_window - len(head) - len(tail)
        return [head + ids[i : i + step] + tail for i in range(0, len(ids), step)]

    def __call__(self, rows: dict[str, list[Any]]) -> PreparedBatch:
        index: list[int] = []
        cols: dict[str, list[Any]] = {"input_ids": [], "window_lens": [], "pixels": [], "n_images": [], "language": []}
        languages = rows.get("language")
        if self.cfg.sentence_vector:
            cols["sentence_ids"] = []
        n_tokens: list[int] = []
        errors: list[RowError] = []
        grid_tokens = self.cfg.image_grid**2
        for i, row in enumerate(decode_batch(rows, self.cfg.decode_config())):
            if isinstance(row, RowFault):
                errors.append(RowError(index=i, stage="preprocess", error_class=row.error_class, message=row.message))
                continue
            wins = self.windows(row.text)
            index.append(i)
            cols["input_ids"].append([t for w in wins for t in w])
            cols["window_lens"].append([len(w) for w in wins])
            cols["pixels"].append(np.stack(row.images).tobytes() if row.images else b"")
            cols["n_images"].append(len(row.images))
            lang = languages[i] if languages is not None else None
            cols["language"].append(str(lang) if lang else None)
            if self.cfg.sentence_vector:
                cols["sentence_ids"].append(self.sentence_ids(row.text) if wins else [])
            n_tokens.append(sum(len(w) for w in wins) + grid_tokens * len(row.images))
        return PreparedBatch(index=index, columns=cols, n_tokens=n_tokens, errors=errors)


def preprocessor_from_files(path: Path, *, config: dict[str, Any]) -> Preprocessor:
    """The preprocessor of a saved starter model from its tokenizer and config alone (no weights)."""
    tokenizer_json = (path / TEXT_TOWER_DIR / "tokenizer.json").read_text()
    cfg = StarterConfig.from_json(config["starter"])
    sentence = (path / SENTENCE_TOWER_DIR / "tokenizer.json").read_text() if cfg.sentence_vector else None
    return StarterPreprocessor(tokenizer_json, cfg, sentence)
