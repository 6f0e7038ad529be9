"""Which decision is in force for a key: source precedence, then the latest commit.

Stand-in for the shared ``pipelines/current.py`` that the lead is writing: the complaints
ingest, the review-as-decisions writer and the transparency report call only these
functions, so pointing them at the shared module is a change in this file alone.

Rule (docs/architecture.md, "Decision sources"): the current decision of a key
(content_id, market, policy_id) is the latest decision of the highest-precedence source
present, appeal > human_review > hash_match > model. "Latest" is the order of
:data:`pipelines.schema.CURRENT_ORDER` (decided_at, then the tie-breakers every reader uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from pipelines.schema import CURRENT_ORDER, DECISION_KEY

# Higher wins. A later model or sweep decision never overrides a decision of record.
SOURCE_RANK: dict[str, int] = {"model": 0, "hash_match": 1, "human_review": 2, "appeal": 3}
# Sources whose decisions are taken by automated means (detection and decision).
AUTOMATED_SOURCES: tuple[str, ...] = ("model", "hash_match")
RECORD_SOURCES: tuple[str, ...] = ("human_review", "appeal")


def source_rank(source: pl.Expr | None = None) -> pl.Expr:
    """The precedence of each row's ``source`` (unknown sources rank below ``model``)."""
    expr = pl.col("source") if source is None else source
    return expr.replace_strict(SOURCE_RANK, default=-1, return_dtype=pl.Int8)


def current_decisions(
    decisions: pl.LazyFrame, *, before: datetime | None = None, key: Sequence[str] = DECISION_KEY
) -> pl.LazyFrame:
    """One row per ``key``: the decision in force just before ``before`` (all rows when None).

    ``key`` is the decision key; callers that ask "in force when?" per request (a complaint
    line) pass their own request key over rows already restricted to that request's key.
    """
    rows = decisions if before is None else decisions.filter(pl.col("decided_at") < before)
    return (
        rows.with_columns(source_rank().alias("__rank"))
        .sort("__rank", *CURRENT_ORDER)
        .unique(list(key), keep="last", maintain_order=True)
        .drop("__rank")
    )


def effective_rows(decisions: pl.LazyFrame) -> pl.LazyFrame:
    """The rows that changed (or re-stated) the decision in force of their key, in key and time order.

    Replaying a key's rows in commit order, a row takes effect unless a higher-precedence
    source already decided the key: after an appeal, a sweep's model row is ignored.
    """
    ordered = decisions.with_columns(source_rank().alias("__rank")).sort(*DECISION_KEY, *CURRENT_ORDER)
    return ordered.filter(pl.col("__rank") >= pl.col("__rank").cum_max().over(list(DECISION_KEY))).drop("__rank")
