"""Coverage gaps: items that were meant to be scored but were dead-lettered, per market.

Dead letters carry no market, so the item's markets come from the backlog's metadata
columns (``content_id``, ``region``, ``markets``, ``language``, ``content_type``; never its
media or text) at the pinned backlog version. A dead-lettered item that has a decision by
the period's end (a later retry succeeded) is not a gap. Rows without a usable id, or whose
id the backlog does not know, are counted under market ``unknown``.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from pipelines.audit.versions import Pinned

UNKNOWN = "unknown"


def dead_letters(pinned: Pinned, *, start: datetime | None, end: datetime) -> pl.DataFrame:
    """Dead letters that failed in the period (content_id, stage, error_class)."""
    if pinned.version is None:
        return pl.DataFrame(schema={"content_id": pl.String, "stage": pl.String, "error_class": pl.String})
    frame = pl.scan_delta(pinned.uri, version=pinned.version).filter(pl.col("failed_at") < end)
    if start is not None:
        frame = frame.filter(pl.col("failed_at") >= start)
    return frame.select("content_id", "stage", "error_class").collect()


def gaps(letters: pl.DataFrame, decided_ids: pl.Series, backlog: Pinned, *, markets_known: bool = True) -> pl.DataFrame:
    """One row per (failed item, market): content_id (nullable), market, language, content_type, stage, error_class.

    ``decided_ids``: the dead-lettered ids that do have a decision (they are not gaps).
    """
    failed = letters.filter(pl.col("content_id").is_null() | ~pl.col("content_id").is_in(decided_ids.implode()))
    failed = failed.unique(["content_id", "stage", "error_class"], keep="first")
    ids = failed["content_id"].drop_nulls().unique()
    meta = pl.DataFrame(
        schema={"content_id": pl.String, "market": pl.String, "language": pl.String, "content_type": pl.String}
    )
    if backlog.version is not None and ids.len() and markets_known:
        scan = pl.scan_delta(backlog.uri, version=backlog.version)
        names = scan.collect_schema().names()
        cols = [c for c in ("content_id", "region", "markets", "language", "content_type") if c in names]
        raw = scan.select(cols).filter(pl.col("content_id").is_in(ids.implode())).collect()
        if "markets" not in raw.columns:
            raw = raw.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("markets"))
        for c in ("language", "content_type"):
            if c not in raw.columns:
                raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        meta = (
            raw.unique("content_id", keep="first")
            .with_columns(
                pl.when(pl.col("markets").list.len() > 0)
                .then(pl.col("markets"))
                .otherwise(pl.concat_list(pl.col("region")))
                .alias("market")
            )
            .explode("market")
            .select("content_id", "market", "language", "content_type")
            .unique()
        )
    out = failed.join(meta, on="content_id", how="left")
    return out.with_columns(pl.col("market").fill_null(UNKNOWN))
