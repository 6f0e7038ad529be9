"""The interface every scoring model implements (starter model, tiny test model, BYO).

Scoring runs in two stages so that CPU work and accelerator work scale separately on Ray:

1. ``Preprocessor.__call__(rows) -> PreparedBatch`` runs in CPU tasks: decode and resize
   images, sample at most a few video keyframes, tokenize text. It never raises for one bad
   row: the row comes back in ``errors`` and the others go on.
2. ``ScoringModel.score(prepared) -> ndarray[n, len(heads)]`` runs in actors (GPU when
   present). It sorts rows by token length and packs micro-batches itself, so callers can
   hand it batches in arrival order without paying for padding.

Both halves travel between Ray processes, so a ``PreparedBatch`` holds only Arrow-friendly
columns (lists of ints, bytes) and the preprocessor is cheap to pickle (no weights).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Input columns a preprocessor reads from backlog rows (pipelines.schema.BACKLOG names).
INPUT_COLUMNS: tuple[str, ...] = ("content_id", "content_type", "language", "text", "image", "frames")


@dataclass(frozen=True)
class RowError:
    """Why one input row could not be prepared or scored (becomes a dead letter)."""

    index: int  # position in the batch handed to the preprocessor
    stage: str  # "preprocess" | "score"
    error_class: str  # e.g. "ImageDecodeError", "DecompressionBombError", "EmptyContent"
    message: str


@dataclass
class PreparedBatch:
    """Model inputs for the rows that prepared cleanly.

    index: position of each prepared row in the original batch (errors hold the rest).
    columns: model-specific Arrow-friendly columns, one entry per prepared row
        (for example ``input_ids`` as lists of int32, ``pixels`` as float16 bytes).
    n_tokens: the sequence length each row will cost the accelerator, used to sort and
        pack micro-batches.
    """

    index: list[int]
    columns: dict[str, list[Any]]
    n_tokens: list[int]
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)


class Preprocessor(ABC):
    """CPU half of a model: picklable, weight-free, deterministic."""

    @abstractmethod
    def __call__(self, rows: dict[str, list[Any]]) -> PreparedBatch:
        """Prepare a batch given as columns (``INPUT_COLUMNS``, each a list of equal length)."""


class ScoringModel(ABC):
    """Accelerator half of a model: one sigmoid score per head for each prepared row."""

    name: str
    version: str
    heads: tuple[str, ...]

    @abstractmethod
    def preprocessor(self) -> Preprocessor:
        """A weight-free preprocessor matching this model."""

    @abstractmethod
    def score(self, prepared: PreparedBatch) -> np.ndarray:
        """Scores in [0, 1], float32, shape ``[len(prepared), len(self.heads)]``, rows in
        the order of ``prepared.index``."""

    def to(self, device: str) -> ScoringModel:
        """Move weights to ``device`` ("cpu", "cuda"); models without weights ignore it."""
        return self
