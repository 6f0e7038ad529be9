"""Own-initiative measures: the counting unit of Parts 5, 6 and 8.

One measure per (item, policy) each time a restriction of the item in the EU/EEA begins:
replaying the decisions of the item's EU/EEA markets in commit order (only the rows that
take effect under source precedence, :func:`pipelines.complaints.current.effective_rows`),
a measure begins at the commit after which at least one market restricts the item (label,
demote, age_restrict, remove) and before which none did. A sweep or a new model that
re-decides a restriction already in force is not a new measure; a restriction lifted (by a
sweep, a review or an appeal) and imposed again later is.

Each measure carries what its beginning commit says: the most severe restrictive action
among the markets it restricts (its restriction type), whether it was solely automated
(every restricting row of that commit came from ``model`` or ``hash_match`` with
``automated = FULLY``), its source (the highest-precedence source among those rows: a
measure begun by an ``appeal`` is a restriction imposed as a result of a complaint, not an
own-initiative measure), its policy version (for the pack's category, keyword and ground)
and the item's language. Everything is polars over the pinned table: no Python per row.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines import markets as mk
from pipelines.complaints.current import AUTOMATED_SOURCES, SOURCE_RANK, effective_rows
from pipelines.policy.model import RESTRICTIVE_ACTIONS

SEVERITY: dict[str, int] = {"label": 1, "demote": 2, "age_restrict": 3, "remove": 4}
_BY_SEVERITY = {v: k for k, v in SEVERITY.items()}
_BY_RANK = {v: k for k, v in SOURCE_RANK.items()}
UNIT: tuple[str, ...] = ("content_id", "policy_id")
COLUMNS: tuple[str, ...] = (
    "content_id", "market", "policy_id", "policy_version", "action", "automated", "source", "run_id",
    "model_name", "model_version", "decided_at", "language", "content_type",
)  # fmt: skip


def measures(decisions: pl.LazyFrame, *, start: datetime, end: datetime) -> pl.DataFrame:
    """Measures that began in ``[start, end)``: one row per (content_id, policy_id, began_at).

    Columns: content_id, policy_id, began_at, policy_version, action (restriction type),
    solely_automated, source, language, system (``<source>:<model_name>`` of an automated
    measure, else null).
    """
    eea = decisions.filter(pl.col("market").is_in(list(mk.EEA)) & (pl.col("decided_at") < end)).select(COLUMNS)
    eff = effective_rows(eea)
    restr = pl.col("action").is_in(list(RESTRICTIVE_ACTIONS))
    eff = eff.with_columns(restr.alias("__r")).with_columns(
        (
            pl.col("__r").cast(pl.Int32)
            - pl.col("__r").shift(1).over("content_id", "market", "policy_id").fill_null(False).cast(pl.Int32)
        ).alias("__d")
    )
    solely = pl.col("source").is_in(list(AUTOMATED_SOURCES)) & (pl.col("automated") == "FULLY")
    rank = pl.col("source").replace_strict(SOURCE_RANK, default=-1, return_dtype=pl.Int8)
    sev = pl.col("action").replace_strict(SEVERITY, default=0, return_dtype=pl.Int8)
    restricting = pl.col("__r")
    per_commit = (
        eff.group_by(*UNIT, "decided_at")
        .agg(
            pl.col("__d").sum().alias("__delta"),
            sev.filter(restricting).max().alias("__sev"),
            solely.filter(restricting).all().alias("solely_automated"),
            rank.filter(restricting).max().alias("__rank"),
            pl.col("policy_version").filter(restricting).max(),
            pl.col("language").first(),
            pl.concat_str([pl.col("source"), pl.col("model_name")], separator=":")
            .filter(restricting & solely)
            .min()
            .alias("system"),
        )
        .sort(*UNIT, "decided_at")
        .with_columns(pl.col("__delta").cum_sum().over(*UNIT).alias("__after"))
        .with_columns((pl.col("__after") - pl.col("__delta")).alias("__before"))
    )
    began = per_commit.filter(
        (pl.col("__before") == 0) & (pl.col("__after") > 0) & (pl.col("decided_at") >= start)
    ).collect()
    return began.select(
        "content_id",
        "policy_id",
        pl.col("decided_at").alias("began_at"),
        "policy_version",
        pl.col("__sev").replace_strict(_BY_SEVERITY, return_dtype=pl.String).alias("action"),
        "solely_automated",
        pl.col("__rank").replace_strict(_BY_RANK, return_dtype=pl.String).alias("source"),
        "language",
        pl.when(pl.col("solely_automated")).then(pl.col("system")).alias("system"),
    ).sort("content_id", "policy_id", "began_at")
