"""Counts, shares and distributions per region (market or group) × policy, from current decisions.

- ``cells`` (:func:`cells_of`, per partition): decision counts by market × policy (× breakdowns)
  × language × stratum × action × automation × source × lineage (policy version, model, run id).
  One group-by on a single 64-bit key (one row hash of the key columns; the strata as small
  integer codes) instead of on ten string columns; the key columns are then gathered from one row per
  cell. Every count in the report, for markets and for groups, is a sum over cells. A partition
  sums its cells into the few projections the report reads (:func:`tallies`, :func:`populations`)
  and ships only those: the cells are the product of every key (10^5 at 10^7 rows, and one more
  factor with every run id or model version), the projections their sum.
- quantiles and distinct items per group come from the partitions' summaries
  (:mod:`pipelines.audit.partial`); :class:`Aggregates` holds the merged result.

A 64-bit hash collision between two different cells would merge them; with thousands of
cells the chance is about 1e-12 per report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from pipelines import markets as mk
from pipelines.audit.accuracy import CELL
from pipelines.audit.strata import band_label, region_group_code, region_group_label
from pipelines.current import is_of_record
from pipelines.schema import ACTIONS

SCORE_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
HOUR_QUANTILES: dict[str, float] = {"hours_to_decision_p50": 0.5, "hours_to_decision_p90": 0.9}
STRATUM_COLS: tuple[str, ...] = ("region_group", "score_band", "changed")
LINEAGE_COLS: tuple[str, ...] = ("policy_version", "model_name", "model_version", "run_id")
COUNT_KEYS: tuple[str, ...] = ("action", "automated", "source")
"""What the report's decision counts are split by (:func:`count_rows`)."""
AUTOMATED_COLS: dict[str, str] = {"FULLY": "fully", "PARTIALLY": "partially", "NOT_AUTOMATED": "not"}
SOURCE_COUNT_COLS: tuple[str, ...] = (
    "model_decisions", "model_detections", "hash_matches", "hash_matches_actioned", "decisions_of_record",
)  # fmt: skip
"""Current decisions by source per region × policy (:func:`count_rows`)."""
LANGUAGE_KEYS: tuple[str, ...] = ("language", "policy_id")
"""The domains of the estimates per language (over every market)."""
FLAGGED = (pl.col("action") != "none").alias("flagged")
"""Whether the decision took an action: the estimators' ``flagged`` cells."""


@dataclass(frozen=True)
class Aggregates:
    """Everything the report rows are built from (all small frames)."""

    counts: pl.DataFrame
    """Current decisions (``n``) per market × dims × :data:`COUNT_KEYS` (:func:`tallies`)."""
    lineage: pl.DataFrame
    """Current decisions (``n``) per market × dims × :data:`LINEAGE_COLS` (:func:`tallies`)."""
    market_q: pl.DataFrame
    group_q: pl.DataFrame
    dims: tuple[str, ...]


def _cell_keys(dims: Sequence[str]) -> list[str]:
    # Codes (__rg, __band), not labels: labels are added to the (small) cells after.
    keys = ["market", *dims, "language", "__rg", "__band", "changed", "action", "automated", "source"]
    return list(dict.fromkeys([*keys, *LINEAGE_COLS]))


def cells_of(
    rows: pl.DataFrame,
    marks: pl.DataFrame,
    dims: Sequence[str],
    *,
    live: pl.Series | None = None,
    constant: frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Current decisions counted by report cell (``n``), with ``region_group``, ``score_band`` and
    the cell's 64-bit key ``__g``.

    rows, marks: a partition's decisions and their current-decision marks
    (:func:`pipelines.audit.current.current_marks`: ``__mp``, ``__band``, ``changed``). ``live``: only
    the rows where it is true count (the others are superseded decisions or decisions before
    the period). ``constant``: columns known to hold one value in every row (the files' statistics
    say so), left out of the key: they cannot tell two rows apart.
    """
    keys = _cell_keys(dims)
    coded = ("__rg", "__band", "changed")
    # The string keys are hashed together chunk by chunk where they lie (one row hash over the
    # columns costs less than a hash per column and their XOR). Market and policy come hashed
    # already (__mp). The origin's region group, not the region: the strata need only the group,
    # and cells keyed by origin region are about ten times as many (each item is shown in
    # markets of other regions).
    # The key is local to the partition (its cells are summed into tallies here): a column that
    # holds one value throughout (a file's policy version, model, source) need not be hashed.
    # Hashing the eight strings costs 0.06-0.08 s per 2 M rows, about a tenth of a partition.
    strings = [c for c in keys if c not in ("market", "policy_id", *coded, *constant)]
    codes = pl.DataFrame(
        [rows.select(region_group_code(pl.col("region")).alias("__rg")).to_series(), marks["__band"], marks["changed"]]
    ).rechunk()
    # Three independent 64-bit hashes XORed (a collision between two of a few thousand cells:
    # about 1e-12): the strings', the (market, policy) pair's and the codes' (bands < 16).
    packed = (
        pl.col("__rg").cast(pl.UInt16) + pl.col("__band").cast(pl.UInt16) * 4 + pl.col("changed").cast(pl.UInt16) * 64
    )
    key = marks["__mp"] ^ codes.select(packed.hash(seed=1001)).to_series()
    if strings:
        key = rows.select(strings).hash_rows(seed=1000) ^ key
    frame = key.alias("__g").to_frame().with_row_index("__row")
    if live is not None:
        # The rows that count only (a group-by on the key nulled elsewhere cost 1.5x as much).
        frame = frame.filter(live)
    groups = frame.group_by("__g").agg(pl.len().alias("n"), pl.first("__row"))
    # Each cell named by its first row: the keys gathered from the rows (strings) or the codes,
    # in row order and from one frame (gathering at scattered positions across the chunks of a
    # frame read from several files cost twice as much: 0.043 against 0.020 s per 2 M rows).
    groups = groups.sort("__row")
    at = groups["__row"]
    named = rows.select([c for c in keys if c not in coded]).gather(at)
    columns = [(codes[c].gather(at) if c in coded else named[c]) for c in keys]
    counted = pl.DataFrame([groups["__g"], *columns, groups["n"].cast(pl.Int64)])
    # Columns: __g (the cell's key: local to the partition, whose constant columns it leaves
    # out; never compared across partitions), the labelled keys (region_group where __rg was),
    # n, score_band.
    order = [("region_group" if c == "__rg" else c) for c in counted.columns if c != "__band"] + ["score_band"]
    return counted.with_columns(
        region_group_label(pl.col("__rg")).alias("region_group"), band_label(pl.col("__band")).alias("score_band")
    ).select(order)


def with_regions(frame: pl.DataFrame, groups: Sequence[str]) -> pl.DataFrame:
    """``frame`` (with a ``market`` column) once per market and once per group containing it.

    Adds ``region`` and ``region_kind`` (``market``/``group``); used to roll cells and units
    up into groups by plain sums.
    """
    markets = frame.with_columns(pl.col("market").alias("region"), pl.lit("market").alias("region_kind"))
    mapping = pl.DataFrame(
        [(m, g) for g in groups for m in mk.GROUPS[g]], schema={"market": pl.String, "region": pl.String}, orient="row"
    )
    grouped = frame.join(mapping, on="market", how="inner").with_columns(pl.lit("group").alias("region_kind"))
    return pl.concat([markets, grouped.select(markets.columns)], how="vertical")


def cells_by(cells: pl.DataFrame, columns: Sequence[str], *more: pl.Expr) -> pl.DataFrame:
    """``cells`` (with ``more`` columns added) summed over every column but market and ``columns``:
    the report's roll-ups need a few of the cells' dozen keys, and :func:`with_regions` on the
    summed cells copies tens of times fewer rows (92 k cells -> about 1 k at 10^7 rows)."""
    frame = cells.with_columns(*more) if more else cells
    return frame.group_by(list(dict.fromkeys(["market", *columns]))).agg(pl.col("n").sum())


def tallies(cells: pl.DataFrame, dims: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The counts ``n`` in ``cells`` per market × ``dims`` × :data:`COUNT_KEYS` (the decision counts
    of :func:`count_rows`) and per market × ``dims`` × :data:`LINEAGE_COLS` (:func:`lineage_rows`):
    a partition's are a few thousand rows where its cells are 5 × 10^4 (10 MB to ship, and one sum
    over all partitions' cells on the driver: 0.07-0.09 s at 10^7 rows)."""
    return cells_by(cells, [*dims, *COUNT_KEYS]), cells_by(cells, [*dims, *LINEAGE_COLS])


def populations(cells: pl.DataFrame, dims: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The estimators' population counts ``n`` in ``cells`` (:data:`~pipelines.audit.accuracy.CELL`
    with ``flagged``: an action was taken): per market × ``dims`` × cell, and per
    :data:`LANGUAGE_KEYS` × cell over the markets of :data:`pipelines.markets.ALL_MARKETS` (no
    language: ``unknown``). A partition's are a few thousand rows, summed like the cells: the
    driver starts the estimators from them as soon as the last partition is in (grouping the
    10^5 summed cells took it 0.03 s, summing them 0.05)."""
    by_market = cells_by(cells, [*dims, *CELL], FLAGGED)
    by_language = in_language_domains(cells).group_by([*LANGUAGE_KEYS, *CELL]).agg(pl.col("n").sum())
    return by_market, by_language


def in_language_domains(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``frame`` (cells or labelled units) that the estimates per language count:
    those of the markets of :data:`pipelines.markets.ALL_MARKETS`, with ``flagged`` and no
    language taken as ``unknown``. The populations and the sample must agree on it."""
    return frame.filter(pl.col("market").is_in(list(mk.ALL_MARKETS))).with_columns(
        FLAGGED, pl.col("language").fill_null("unknown")
    )


def _source_counts(actioned: pl.Expr) -> list[pl.Expr]:
    """The :data:`SOURCE_COUNT_COLS` of a group of cells.

    model_decisions, model_detections: current decisions the model took, and those with an
    action; hash_matches, hash_matches_actioned: current decisions a known-material match took
    (a lifted match whose key has no model decision stays current with action none), and those
    with an action; decisions_of_record: human review and appeal outcomes.
    """
    source = pl.col("source")
    filters = {
        "model_decisions": source == "model",
        "model_detections": (source == "model") & actioned,
        "hash_matches": source == "hash_match",
        "hash_matches_actioned": (source == "hash_match") & actioned,
        "decisions_of_record": is_of_record(source),
    }
    assert tuple(filters) == SOURCE_COUNT_COLS
    return [pl.col("n").filter(f).sum().cast(pl.Int64).alias(name) for name, f in filters.items()]


def count_rows(agg: Aggregates, groups: Sequence[str]) -> pl.DataFrame:
    """Per region × policy (× breakdowns): decision counts by action, automation and source."""
    keys = ["region", "region_kind", *agg.dims]
    cells = with_regions(agg.counts, groups)
    actioned = pl.col("action") != "none"
    exprs = [pl.col("n").sum().cast(pl.Int64).alias("decisions")]
    exprs += [pl.col("n").filter(pl.col("action") == a).sum().cast(pl.Int64).alias(f"action_{a}") for a in ACTIONS]
    exprs.append(pl.col("n").filter(actioned).sum().cast(pl.Int64).alias("actioned"))
    exprs += [
        pl.col("n").filter(actioned & (pl.col("automated") == value)).sum().cast(pl.Int64).alias(f"automated_{name}")
        for value, name in AUTOMATED_COLS.items()
    ]
    exprs += _source_counts(actioned)
    out = cells.group_by(keys).agg(exprs)
    for name in AUTOMATED_COLS.values():
        out = out.with_columns(
            pl.when(pl.col("actioned") > 0)
            .then(pl.col(f"automated_{name}") / pl.col("actioned"))
            .otherwise(None)
            .alias(f"share_{name}")
        )
    return out


def lineage_rows(agg: Aggregates, groups: Sequence[str]) -> pl.DataFrame:
    """Per region × policy: sorted distinct policy versions, model versions and run ids."""
    keys = ["region", "region_kind", *agg.dims]
    frame = with_regions(agg.lineage, groups).with_columns(
        pl.concat_str([pl.col("model_name"), pl.col("model_version")], separator="/").alias("model")
    )
    return frame.group_by(keys).agg(
        pl.col("policy_version").unique().sort().alias("policy_versions"),
        pl.col("model").unique().sort().alias("model_versions"),
        pl.col("run_id").unique().sort().alias("run_ids"),
    )
