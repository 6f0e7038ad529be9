"""Counts, shares and distributions per region (market or group) × policy, from current decisions.

Built for 10 million decision rows on two cores:

- ``cells``: decision counts by market × policy (× breakdowns) × language × stratum × action
  × automation × source × lineage (policy version, model, run id). One group-by on a single 64-bit
  key (XOR of per-column hashes) instead of on ten string columns; the key columns are then
  gathered from one row per cell. Every count in the report, for markets and for groups, is
  a sum over cells; the estimators take their population counts from them; the lineage
  lists come from them.
- quantiles: the scores and hours of each market × policy are gathered once as arrays;
  market quantiles, and group quantiles over the concatenated arrays of member markets, use
  ``numpy.partition`` (linear interpolation, like ``polars`` ``quantile(..., "linear")``).
- ``items`` per group: distinct items (an item shown in several markets of a group counts
  once), by ``n_unique`` of the 64-bit item hash.

A 64-bit hash collision between two different cells would merge them; with thousands of
cells the chance is about 1e-12 per report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines import markets as mk
from pipelines.audit.quantiles import exact_quantiles
from pipelines.audit.strata import band_label, region_group
from pipelines.buckets import count_by, hash_columns
from pipelines.current import is_of_record
from pipelines.schema import ACTIONS

SCORE_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
HOUR_QUANTILES: dict[str, float] = {"hours_to_decision_p50": 0.5, "hours_to_decision_p90": 0.9}
STRATUM_COLS: tuple[str, ...] = ("region_group", "score_band", "changed")
LINEAGE_COLS: tuple[str, ...] = ("policy_version", "model_name", "model_version", "run_id")
AUTOMATED_COLS: dict[str, str] = {"FULLY": "fully", "PARTIALLY": "partially", "NOT_AUTOMATED": "not"}
SOURCE_COUNT_COLS: tuple[str, ...] = (
    "model_decisions", "model_detections", "hash_matches", "hash_matches_actioned", "decisions_of_record",
)  # fmt: skip
"""Current decisions by source per region × policy (:func:`count_rows`)."""


@dataclass(frozen=True)
class Aggregates:
    """Everything the report rows are built from (all small frames)."""

    cells: pl.DataFrame
    market_q: pl.DataFrame
    group_q: pl.DataFrame
    dims: tuple[str, ...]


def _cell_keys(dims: Sequence[str]) -> list[str]:
    # __band, not the band label: labels are added to the (small) cells after.
    keys = ["market", *dims, "language", "region_group", "__band", "changed", "action", "automated", "source"]
    return list(dict.fromkeys([*keys, *LINEAGE_COLS]))


def cells_of(current: pl.DataFrame, dims: Sequence[str]) -> pl.DataFrame:
    # The origin's region group, not the region: the strata need only the group, and cells keyed
    # by origin region are about ten times as many (each item is shown in markets of other regions).
    frame = current.with_columns(region_group(pl.col("region")).alias("region_group"))
    counted = count_by(frame, _cell_keys(dims), seed=1000)
    return counted.with_columns(band_label(pl.col("__band")).alias("score_band")).drop("__band")


def _q_row(scores: np.ndarray, hours: np.ndarray) -> dict[str, float | None]:
    row: dict[str, float | None] = {}
    for name, v in zip(HOUR_QUANTILES, exact_quantiles(hours, list(HOUR_QUANTILES.values())), strict=True):
        row[name] = v
    for q, v in zip(SCORE_QUANTILES, exact_quantiles(scores, SCORE_QUANTILES), strict=True):
        row[f"score_p{round(q * 100)}"] = v
    return row


def _merge(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted union of sorted arrays: timsort ('stable') merges the pre-sorted runs in O(n log runs)."""
    return np.sort(np.concatenate(parts), kind="stable") if len(parts) > 1 else parts[0]


def quantiles_of(
    current: pl.DataFrame, dims: Sequence[str], groups: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(market quantiles, group quantiles + distinct items) per region × dims."""
    dims = list(dims)
    hours = (pl.col("decided_at") - pl.col("created_at")).dt.total_seconds(fractional=True) / 3600.0
    # One sort by a 64-bit key of (market, dims) makes each market × dims a contiguous slice
    # of two float arrays: no per-group Python objects.
    narrow = current.select(
        hash_columns(["market", *dims], seed=1000).alias("__m"), "market", *dims,
        pl.col("score").cast(pl.Float64).alias("s"), hours.alias("h"),
    ).sort("__m")  # fmt: skip
    bounds = narrow.group_by("__m", maintain_order=True).agg(pl.len().alias("__len"), pl.col("market", *dims).first())
    s_all, h_all = narrow["s"].to_numpy(), narrow["h"].to_numpy()
    keys = [tuple(r[k] for k in ["market", *dims]) for r in bounds.iter_rows(named=True)]
    ends = np.cumsum(bounds["__len"].to_numpy())
    starts = ends - bounds["__len"].to_numpy()

    def sort_slice(i: int) -> tuple[np.ndarray, np.ndarray]:
        s, h = s_all[starts[i] : ends[i]], h_all[starts[i] : ends[i]]
        return np.sort(s[~np.isnan(s)]), np.sort(h[~np.isnan(h)])

    # numpy sorts release the GIL: one thread per core halves the wall time on two cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sorted_slices = list(pool.map(sort_slice, range(len(keys))))
        arrays = dict(zip(keys, sorted_slices, strict=True))
        market_rows = [
            {**dict(zip(["region", *dims], key, strict=True)), **_q_row(s, h)} for key, (s, h) in arrays.items()
        ]
        jobs: list[tuple[str, tuple[object, ...], list[tuple[np.ndarray, np.ndarray]]]] = []
        for g in groups:
            members = set(mk.GROUPS[g])
            by_dims: dict[tuple[object, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
            for key, arr in sorted(arrays.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
                if key[0] in members:
                    by_dims.setdefault(key[1:], []).append(arr)
            jobs += [(g, dkey, parts) for dkey, parts in by_dims.items()]

        def group_row(job: tuple[str, tuple[object, ...], list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, object]:
            g, dkey, parts = job
            merged = _q_row(_merge([p[0] for p in parts]), _merge([p[1] for p in parts]))
            return {"region": g, **dict(zip(dims, dkey, strict=True)), **merged}

        group_rows = list(pool.map(group_row, jobs))
    in_group = {g: pl.col("market").is_in(list(mk.GROUPS[g])) for g in groups}
    items = (
        current.group_by(dims)
        .agg(pl.col("__c").filter(m).n_unique().cast(pl.Int64).alias(g) for g, m in in_group.items())
        .unpivot(index=dims, on=list(groups), variable_name="region", value_name="items")
        if groups
        else None
    )
    schema: dict[str, pl.DataType] = {"region": pl.String(), **{d: current.schema[d] for d in dims}}
    qcols: dict[str, pl.DataType] = {
        c: pl.Float64() for c in [*HOUR_QUANTILES, *(f"score_p{round(q * 100)}" for q in SCORE_QUANTILES)]
    }
    market_q = pl.DataFrame(market_rows, schema={**schema, **qcols}, orient="row")
    group_q = pl.DataFrame(group_rows, schema={**schema, **qcols}, orient="row")
    if items is not None:
        group_q = group_q.join(items.select("region", *dims, "items"), on=["region", *dims], how="left")
    else:
        group_q = group_q.with_columns(pl.lit(None, dtype=pl.Int64).alias("items"))
    return market_q, group_q


def collect(current: pl.DataFrame, *, dims: Sequence[str], groups: Sequence[str]) -> Aggregates:
    market_q, group_q = quantiles_of(current, dims, groups)
    return Aggregates(cells=cells_of(current, dims), market_q=market_q, group_q=group_q, dims=tuple(dims))


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
    cells = with_regions(agg.cells, groups)
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
    frame = with_regions(agg.cells, groups).with_columns(
        pl.concat_str([pl.col("model_name"), pl.col("model_version")], separator="/").alias("model")
    )
    return frame.group_by(keys).agg(
        pl.col("policy_version").unique().sort().alias("policy_versions"),
        pl.col("model").unique().sort().alias("model_versions"),
        pl.col("run_id").unique().sort().alias("run_ids"),
    )
