"""The current decision of each (content_id, market, policy_id): the most recently committed row."""

from __future__ import annotations

import polars as pl

KEY = ("content_id", "market", "policy_id")


def current_decisions(decisions: pl.LazyFrame) -> pl.LazyFrame:
    """Latest row per key by ``decided_at`` (the commit time), ties broken by policy version."""
    return decisions.sort("decided_at", "policy_version").group_by(KEY).last()
