"""A tiny, fast, deterministic scoring model for integration and fault tests.

Features: hashed bag of words of the text (stable CRC32 hashing, not Python's salted
``hash``) plus colour statistics of the decoded images; heads: fixed linear maps whose
weights are seeded by (seed, head id), so a head scores the same whatever other heads the
model has; scores: sigmoid. It decodes and validates rows with the same
:mod:`pipelines.model.decode` rules as the starter model, so both dead-letter the same rows.
It needs numpy, Pillow and safetensors only: no torch.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.heads import DEFAULT_HEADS
from pipelines.model.decode import DecodeConfig, DecodedRow, RowFault, decode_batch
from pipelines.model.interface import PreparedBatch, Preprocessor, RowError, ScoringModel

_WORD = re.compile(r"\w+", re.UNICODE)
_IMAGE_FEATURES = 19  # 3 means + 3 stds + 12 histogram bins + 1 edge energy


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the tiny model.

    text_dims: hashed bag-of-words buckets.
    image_size: side images are decoded to (small: only colour statistics are used).
    seed: seeds every head's weights together with the head id.
    logit_scale: spreads scores over [0, 1] instead of bunching them at 0.5.
    """

    text_dims: int = 512
    image_size: int = 32
    seed: int = 0
    logit_scale: float = 1.5

    def __post_init__(self) -> None:
        if not 8 <= self.text_dims <= 1 << 20:
            raise ValueError(f"text_dims must be in [8, 1048576], got {self.text_dims}")
        if self.logit_scale <= 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale}")

    @property
    def n_features(self) -> int:
        return self.text_dims + _IMAGE_FEATURES + 2

    def decode_config(self) -> DecodeConfig:
        return DecodeConfig(image_size=self.image_size)


def _text_features(text: str, dims: int) -> np.ndarray:
    v = np.zeros(dims, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        h = zlib.crc32(word.encode("utf-8"))
        v[h % dims] += 1.0 if (h >> 31) & 1 else -1.0
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _image_features(images: list[np.ndarray]) -> np.ndarray:
    if not images:
        return np.zeros(_IMAGE_FEATURES, dtype=np.float32)
    feats = []
    for img in images:
        x = img.astype(np.float32) / 255.0
        hist = [np.histogram(x[..., c], bins=4, range=(0.0, 1.0))[0] / x[..., c].size for c in range(3)]
        gray = x.mean(axis=2)
        edges = float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())
        feats.append(np.concatenate([x.mean(axis=(0, 1)), x.std(axis=(0, 1)), *hist, [edges]]))
    # Centre roughly so that image statistics move scores both ways.
    return (np.mean(feats, axis=0) - 0.25).astype(np.float32)


def featurize(row: DecodedRow, cfg: TinyConfig) -> np.ndarray:
    """The tiny model's feature vector of one decoded row."""
    flags = np.array([1.0 if row.text else 0.0, 1.0 if row.images else 0.0], dtype=np.float32)
    return np.concatenate([_text_features(row.text, cfg.text_dims), _image_features(row.images), flags])


class TinyPreprocessor(Preprocessor):
    """Decodes with the shared rules and computes the feature vector (weight-free)."""

    def __init__(self, cfg: TinyConfig) -> None:
        self.cfg = cfg

    def __call__(self, rows: dict[str, list[Any]]) -> PreparedBatch:
        index: list[int] = []
        features: list[bytes] = []
        n_tokens: list[int] = []
        errors: list[RowError] = []
        for i, row in enumerate(decode_batch(rows, self.cfg.decode_config())):
            if isinstance(row, RowFault):
                errors.append(RowError(index=i, stage="preprocess", error_class=row.error_class, message=row.message))
                continue
            index.append(i)
            features.append(featurize(row, self.cfg).tobytes())
            n_tokens.append(len(_WORD.findall(row.text)) + 4 * len(row.images))
        return PreparedBatch(index=index, columns={"features": features}, n_tokens=n_tokens, errors=errors)


def _head_weights(head: str, cfg: TinyConfig) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng([cfg.seed, zlib.crc32(head.encode("utf-8"))])
    w = rng.standard_normal(cfg.n_features).astype(np.float32)
    # The text part is a unit vector, so it moves the logit by N(0, 1); the image
    # statistics are O(0.3) each; the presence flags get a milder weight.
    w[-2:] *= 0.5
    return w, float(rng.normal(-0.5, 0.5))


class TinyModel(ScoringModel):
    """Fast deterministic model with the full scoring interface (no torch)."""

    kind = "tiny"

    def __init__(
        self,
        heads: tuple[str, ...] = DEFAULT_HEADS,
        *,
        name: str = "tiny",
        version: str = "0",
        config: TinyConfig | None = None,
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> None:
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique, got {heads}")
        self.heads = tuple(heads)
        self.name = name
        self.version = version
        self.cfg = config or TinyConfig()
        if weights is None or bias is None:
            pairs = [_head_weights(h, self.cfg) for h in self.heads]
            weights = np.stack([w for w, _ in pairs], axis=1)
            bias = np.array([b for _, b in pairs], dtype=np.float32)
        if weights.shape != (self.cfg.n_features, len(self.heads)) or bias.shape != (len(self.heads),):
            raise ValueError(
                f"weights {weights.shape} / bias {bias.shape} do not match "
                f"{self.cfg.n_features} features x {len(self.heads)} heads"
            )
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)

    def preprocessor(self) -> Preprocessor:
        return TinyPreprocessor(self.cfg)

    def score(self, prepared: PreparedBatch) -> np.ndarray:
        if len(prepared) == 0:
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        x = np.stack([np.frombuffer(b, dtype=np.float32) for b in prepared.columns["features"]])
        # An explicit per-row reduction instead of a BLAS matmul: a row's score is then
        # bit-identical whatever batch it arrives in (reruns and retries compare exactly).
        logits = (
            (x[:, :, None].astype(np.float64) * self.weights[None]).sum(axis=1) + self.bias
        ) * self.cfg.logit_scale
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))).astype(np.float32)

    # -- persistence (see pipelines.model.store) --------------------------------------
    def save_files(self, path: Path) -> dict[str, Any]:
        from safetensors.numpy import save_file

        save_file({"weights": self.weights, "bias": self.bias}, str(path / "weights.safetensors"))
        return asdict(self.cfg)

    @classmethod
    def load_files(
        cls, path: Path, *, config: dict[str, Any], heads: tuple[str, ...], name: str, version: str
    ) -> TinyModel:
        from safetensors.numpy import load_file

        tensors = load_file(str(path / "weights.safetensors"))
        return cls(
            heads,
            name=name,
            version=version,
            config=TinyConfig(**config),
            weights=tensors["weights"],
            bias=tensors["bias"],
        )


def preprocessor_from_files(path: Path, *, config: dict[str, Any]) -> Preprocessor:
    """The preprocessor of a saved tiny model from its config alone (no weights)."""
    return TinyPreprocessor(TinyConfig(**config))
