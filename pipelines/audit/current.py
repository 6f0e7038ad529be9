"""The current decision of each (content_id, market, policy_id), read lazily from Delta.

"Current" is the rule of :mod:`pipelines.current` (source precedence appeal > human_review >
hash_match > model, then the latest commit), applied here in the audit's fast form.

Most keys have a single row, so the expensive part (sorting and picking the last row) runs
only on keys whose 64-bit hash repeats; a hash collision merely sends a few more rows down
that exact path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

import polars as pl

from pipelines.audit.strata import band_code, band_label, region_group
from pipelines.audit.versions import Pinned
from pipelines.current import ORDER, RANK, rank_for, repeated_values, source_rank
from pipelines.errors import BadInputError
from pipelines.schema import CURRENT_ORDER, DECISION_KEY

_F = TypeVar("_F", pl.DataFrame, pl.LazyFrame)
KEY: tuple[str, ...] = DECISION_KEY
# What the report needs. Not content_sha256 (the widest column, used by no aggregate) nor the
# media: the audit never reads what it does not report.
COLUMNS: tuple[str, ...] = (
    "content_id", "market", "policy_id", "policy_version", "action", "score", "automated",
    "run_id", "model_name", "model_version", "decided_at", "created_at", "region", "language", "content_type",
    "source",
)  # fmt: skip
_ORDER = ORDER


def scan_decisions(pinned: Pinned) -> pl.LazyFrame:
    """The decisions table at its pinned version (BadInputError when there is none)."""
    if pinned.version is None:
        raise BadInputError(
            f"no decisions table at {pinned.uri} (as of the pinned time): run `batchjobs backfill` first, "
            "or pick a later --as-of"
        )
    return pl.scan_delta(pinned.uri, version=pinned.version).select(COLUMNS)


_ITEM_SEED, _POLICY_SEED = 11, 13


def unit_hash(content_id: pl.Expr, policy_id: pl.Expr) -> pl.Expr:
    """The 64-bit hash ``__i`` of a review unit (content_id, policy_id): the partitions name
    units by it, and the audit picks the labelled ones by it."""
    return content_id.hash(seed=_ITEM_SEED) ^ policy_id.hash(seed=_POLICY_SEED)


def current_decisions(decisions: pl.LazyFrame, *, before: datetime | None) -> pl.DataFrame:
    """Current decision per key among rows decided before ``before`` (None: every row), in memory.

    One scan of the (narrow) columns, then :func:`current_marks` without the superseded rows:
    repeated keys are found by sorting the 64-bit key hashes, so most keys, which have a single
    row, pass straight through and only repeated ones are sorted and reduced. Adds (the columns
    :data:`MARKS`) ``changed`` (bool): the item's decision under this policy took more than one
    action over its history in any market (a sweep or a new model changed it), ``__band`` (the
    band code, hash matches apart, :func:`pipelines.audit.strata.band_code`), and the hashes
    ``__c`` (item), ``__i`` (item × policy) and ``__mp`` (market × policy) that counts and joins
    use instead of strings. Stratum labels (:func:`with_strata`) are added to small frames
    only: on 10 million rows they cost more than the whole aggregation.
    """
    # before=None: the caller's rows are already those decided in the period (no copying filter).
    scan = decisions if before is None else decisions.filter(pl.col("decided_at") < before)
    # One chunk per column: a lazy collect returns many small chunks, on which the filter that
    # drops the superseded rows would re-align every column first.
    rows, marks = current_marks(scan.collect().rechunk(), mark=False)
    return pl.concat([rows, marks], how="horizontal")


def _resolve(multi: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """From the rows of repeated keys (the key, source, action, the ORDER columns, ``__i``, the
    row number ``__row`` and the key hash ``__k``): each key's current row (its ``__row``) and the
    review units (``__i``) whose action differs between their rows."""
    ordered = (
        multi.with_columns(rank_for(multi).alias(RANK))
        .select(*KEY, *_ORDER, "action", "__i", "__row", "__k")
        # By key hash first: a key's rows are then adjacent and in ORDER, cheaper to sort and
        # to group (the group-by is still on the key's columns: a hash collision merges nothing).
        .sort("__k", *_ORDER)
    )
    return _decided(ordered, KEY)


def _decided(ordered: pl.DataFrame, by: Sequence[str]) -> tuple[pl.Series, pl.Series]:
    """Per key (``by``) of ``ordered`` (each key's rows in :data:`ORDER`): its last row's ``__row``
    (the current decision), and the review units ``__i`` whose action differs between rows."""
    won = ordered.group_by(*by, maintain_order=True).agg(
        pl.col("__row").last(), pl.col("__i").first(), (pl.col("action").n_unique() > 1).alias("__chg")
    )
    return won["__row"], won.filter(pl.col("__chg"))["__i"].unique()


def _resolve_repeated(
    rows: pl.DataFrame, units: pl.Series, key: pl.Series, at: pl.Series
) -> tuple[pl.Series, pl.Series]:
    """:func:`_resolve` of the rows at ``at`` (those of repeated keys; ``units``: the rows' ``__i``,
    ``key``: their key hash ``__k``).

    Most often the key hash, the source's precedence and the commit time order each key's rows
    with no tie: then a numeric sort and a group-by on the key hash decide, and the string
    tie-breakers are not gathered (on the 10^7-row benchmark's range of 100 k re-decided keys:
    0.06 s against 0.095). A tie, two keys sharing a hash, a hash match (its precedence needs the
    other rows of its key and source in order) or a missing commit time take the exact path.
    """
    slim = rows.select(*KEY, "source", "action", "decided_at").gather(at)
    slim = slim.with_columns(units.gather(at), key.gather(at), at.alias("__row"))
    if not bool((slim["source"] == "hash_match").any()) and not slim["decided_at"].null_count():
        ordered = slim.with_columns(source_rank().alias(RANK)).sort("__k", RANK, "decided_at")
        same = pl.col("__k") == pl.col("__k").shift(1)
        tied = same & (pl.col(RANK) == pl.col(RANK).shift(1)) & (pl.col("decided_at") == pl.col("decided_at").shift(1))
        collided = same & ~pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in KEY])
        check = ordered.select(tied.any().alias("tied"), collided.any().alias("collided"))
        if not (check["tied"][0] or check["collided"][0]):
            return _decided(ordered, ["__k"])
    # The exact path: only the tie-breakers the gathered rows lack are gathered now.
    return _resolve(slim.with_columns(rows.select([c for c in CURRENT_ORDER if c not in slim.columns]).gather(at)))


MARKS: tuple[str, ...] = ("__c", "__i", "__mp", "changed", "__band")
"""The columns of :func:`current_marks` (then ``__live`` where some key repeats)."""


def current_marks(rows: pl.DataFrame, *, mark: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(rows, marks)``: the current decision per key of ``rows`` (all decided in the period), for
    frames of millions of rows: the superseded rows of repeated keys stay, marked.

    ``marks`` holds the narrow per-row columns, row-aligned with ``rows`` and in one chunk:
    :data:`MARKS` and, only when some key repeats,
    ``__live`` (False on superseded rows). ``rows`` comes back as given: a frame read from several
    files or row groups has one chunk per piece, and re-chunking its dozen string columns copies 16
    bytes per value and column (measured 0.1-0.13 s on 2 M rows, as much as the read). The
    per-row work here and in the callers runs chunk by chunk; only narrow numeric frames are
    re-chunked for the group-bys.

    ``mark=False``: superseded rows are dropped from both instead (a copy of ``rows``), no ``__live``.
    """
    # One column at a time on the chunks as read (an expression over two columns chunked
    # differently re-aligns them), then one chunk for the narrow result.
    raw = rows.select(
        pl.col("content_id").hash(seed=_ITEM_SEED).alias("__c"),
        pl.col("policy_id").hash(seed=_POLICY_SEED).alias("__p"),
        pl.col("market").hash(seed=17).alias("__m"),
        band_code(pl.col("score"), pl.col("source")).alias("__band"),
    ).rechunk()
    # unit_hash's seeds: __c ^ __p is the review unit, __p ^ market the (market, policy) pair.
    marks = raw.select(
        "__c", (pl.col("__c") ^ pl.col("__p")).alias("__i"), (pl.col("__p") ^ pl.col("__m")).alias("__mp"), "__band"
    )
    key = (marks["__c"] ^ marks["__mp"]).alias("__k")
    repeated = repeated_values(key)
    if repeated.len() == 0:
        return rows, marks.with_columns(pl.lit(False).alias("changed")).select(MARKS)
    # Only the rows of repeated keys are gathered and sorted; the winners are named by row number.
    many = key.is_in(repeated.implode())
    at = many.arg_true()
    winners, changed_units = _resolve_repeated(rows, marks["__i"], key, at)
    live = ~many.to_numpy()
    live[winners.to_numpy()] = True
    changed = marks["__i"].is_in(changed_units.implode()) if changed_units.len() else pl.lit(False)
    marks = marks.with_columns(changed.alias("changed"), pl.Series("__live", live)).select(*MARKS, "__live")
    if mark:
        return rows, marks
    keep = marks["__live"]
    return rows.filter(keep), marks.filter(keep).drop("__live")


def with_strata(frame: _F) -> _F:
    """Add the stratum labels ``region_group`` and ``score_band`` (from ``region`` and ``__band``)."""
    return frame.with_columns(
        region_group(pl.col("region")).alias("region_group"), band_label(pl.col("__band")).alias("score_band")
    )
