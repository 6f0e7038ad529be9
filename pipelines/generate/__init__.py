"""Synthetic multimodal backlogs with true labels, for training, demos, audits and tests.

``generate_backlog(lake, config)`` writes ``backlog`` (schema BACKLOG) and ``ground_truth``
(schema GROUND_TRUTH) into a lake, deterministically for a seed, streaming batch by batch.
"""

from __future__ import annotations

from pipelines.generate.badrows import BAD_ROW_KINDS, UNTAGGED_KINDS, bad_row_kind
from pipelines.generate.config import GenerateConfig, GenerateSummary
from pipelines.generate.rows import BASE_RATES, effective_rates, heldout_families
from pipelines.generate.writer import generate_backlog

__all__ = [
    "BAD_ROW_KINDS",
    "BASE_RATES",
    "UNTAGGED_KINDS",
    "GenerateConfig",
    "GenerateSummary",
    "bad_row_kind",
    "effective_rates",
    "generate_backlog",
    "heldout_families",
]
