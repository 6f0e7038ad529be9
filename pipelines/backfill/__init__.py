"""Backfill: score a backlog on Ray Data and commit scores and decisions exactly once."""

from pipelines.backfill.config import DEFAULT_MODEL_URI, BackfillConfig
from pipelines.backfill.run import BackfillSummary, run_backfill

__all__ = ["DEFAULT_MODEL_URI", "BackfillConfig", "BackfillSummary", "run_backfill"]
