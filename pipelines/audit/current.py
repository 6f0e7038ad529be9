"""The current decision of each (content_id, market, policy_id), read lazily from Delta.

"Current" is the most recently committed row for the key. ``decided_at`` is the commit time
of a decision (docs/architecture.md), so the latest ``decided_at`` is the latest commit;
rows of one commit tie on it and are ordered by policy version, model version and run id,
which makes the choice deterministic.

Most keys have a single row, so the expensive part (sorting and picking the last row) runs
only on keys whose 64-bit hash repeats; a hash collision merely sends a few more rows down
that exact path.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.audit.strata import region_group, score_band
from pipelines.audit.versions import Pinned
from pipelines.errors import BadInputError

KEY: tuple[str, ...] = ("content_id", "market", "policy_id")
COLUMNS: tuple[str, ...] = (
    "content_id", "market", "policy_id", "policy_version", "action", "score", "automated", "source",
    "run_id", "model_name", "model_version", "decided_at", "created_at", "region", "language", "content_type",
    "content_sha256",
)  # fmt: skip
_ORDER = ("decided_at", "policy_version", "model_version", "run_id")


def scan_decisions(pinned: Pinned) -> pl.LazyFrame:
    """The decisions table at its pinned version (BadInputError when there is none)."""
    if pinned.version is None:
        raise BadInputError(
            f"no decisions table at {pinned.uri} (as of the pinned time): run `batchjobs backfill` first, "
            "or pick a later --as-of"
        )
    return pl.scan_delta(pinned.uri, version=pinned.version).select(COLUMNS)


def current_decisions(decisions: pl.LazyFrame, *, before: datetime) -> pl.LazyFrame:
    """Current decision per key among rows decided before ``before``.

    Adds ``changed`` (bool): the item's decision under this policy took more than one action
    over its history in any market (a sweep or a new model changed it), and the stratum
    columns ``region_group`` and ``score_band`` of :mod:`pipelines.audit.strata`.
    """
    rows = decisions.filter(pl.col("decided_at") < before).with_columns(pl.struct(*KEY).hash(seed=7).alias("__k"))
    repeated = pl.col("__k").is_duplicated()
    single = rows.filter(~repeated).with_columns(pl.lit(False).alias("__chg"))
    multi = (
        rows.filter(repeated)
        .sort(*_ORDER)
        .group_by(*KEY)
        .agg(pl.all().exclude(KEY).last(), (pl.col("action").n_unique() > 1).alias("__chg"))
    )
    current = pl.concat([single, multi.select(single.collect_schema().names())], how="vertical")
    changed_items = multi.filter(pl.col("__chg")).select("content_id", "policy_id").unique()
    return (
        current.join(
            changed_items.with_columns(pl.lit(True).alias("changed")), on=["content_id", "policy_id"], how="left"
        )
        .with_columns(
            pl.col("changed").fill_null(False),
            region_group(pl.col("region")).alias("region_group"),
            score_band(pl.col("score")).alias("score_band"),
        )
        .drop("__k", "__chg")
    )
