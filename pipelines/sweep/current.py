"""The current decision of each (content_id, market, policy_id): the most recently committed row."""

from __future__ import annotations

import polars as pl

from pipelines.schema import CURRENT_ORDER, DECISION_KEY

KEY = DECISION_KEY


def current_decisions(decisions: pl.LazyFrame) -> pl.LazyFrame:
    """Latest row per key (see :data:`pipelines.schema.CURRENT_ORDER`)."""
    return decisions.sort(*CURRENT_ORDER).group_by(DECISION_KEY).last()
