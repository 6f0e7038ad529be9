"""Synthetic multimodal backlogs with true labels, for training, demos, audits and tests.

``generate_backlog(lake, config)`` writes ``backlog`` (schema BACKLOG) and ``ground_truth``
(schema GROUND_TRUTH) into a lake, deterministically for a seed, streaming batch by batch.

Content ids: good rows are ``<seed tag>-<row index, 10 digits>``; bad rows are
``bad-<kind>-<seed tag>-<n>`` (:func:`bad_row_kind` reads the kind back), except the kinds in
UNTAGGED_KINDS (a null id; an exact duplicate of a good row). Bad rows have no ground truth.
Ground truth: ``family`` and ``split`` are the row's on every target; violating families are
held out per policy (:func:`heldout_families`, the same for every seed), benign rows by hash.
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
