"""The decision in force for a key, in the forms the complaints, review and transparency code need.

The rule itself (source precedence appeal > human_review > hash_match > model, then the latest
commit) is :mod:`pipelines.current`'s; this module only adds what those callers ask of it:
"in force just before a time", per request key (a complaint line, a review sample), and the
replay of a key's history (which rows took effect).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from pipelines.current import ORDER, RANK, RECORD_SOURCES, SOURCE_RANK, source_rank, with_rank
from pipelines.schema import CURRENT_ORDER, DECISION_KEY

# Sources whose decisions are taken by automated means (detection and decision).
AUTOMATED_SOURCES: tuple[str, ...] = ("model", "hash_match")

__all__ = [
    "AUTOMATED_SOURCES",
    "RECORD_SOURCES",
    "SOURCE_RANK",
    "current_decisions",
    "effective_rows",
    "source_rank",
]


def current_decisions(
    decisions: pl.LazyFrame, *, before: datetime | None = None, key: Sequence[str] = DECISION_KEY
) -> pl.LazyFrame:
    """One row per ``key``: the decision in force just before ``before`` (all rows when None).

    ``key`` is the decision key; callers that ask "in force when?" per request (a complaint
    line) pass their own request key over rows already restricted to that request's key.
    """
    rows = decisions if before is None else decisions.filter(pl.col("decided_at") < before)
    return with_rank(rows).sort(*ORDER).unique(list(key), keep="last", maintain_order=True).drop(RANK)


def effective_rows(decisions: pl.LazyFrame) -> pl.LazyFrame:
    """The rows that changed (or re-stated) the decision in force of their key, in key and time order.

    Replaying a key's rows in commit order, a row takes effect unless a higher-precedence
    source already decided the key: after an appeal, a sweep's model row is ignored.
    """
    ordered = with_rank(decisions).sort(*DECISION_KEY, *CURRENT_ORDER)
    return ordered.filter(pl.col(RANK) >= pl.col(RANK).cum_max().over(list(DECISION_KEY))).drop(RANK)
