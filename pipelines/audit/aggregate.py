"""Counts, shares and distributions per region (market or group) × policy, from current decisions.

One lazy plan, collected once with :func:`polars.collect_all` so the Delta scan is shared:

- ``cells``: decision counts by market × policy (× breakdowns) × language × stratum × action
  × automation. Small (thousands of rows); every count in the report, for markets and for
  groups, is a sum over it, and the estimators take their population counts from it.
- ``market_q`` / ``group_q``: quantiles of score and of hours from creation to decision,
  and distinct items for groups (an item distributed in several markets of a group counts
  once), which cannot be summed from cells.
- ``lineage``: distinct run ids, model and policy versions per market × policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from pipelines import markets as mk
from pipelines.schema import ACTIONS

SCORE_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
STRATUM_COLS: tuple[str, ...] = ("region_group", "score_band", "changed")
AUTOMATED_COLS: dict[str, str] = {"FULLY": "fully", "PARTIALLY": "partially", "NOT_AUTOMATED": "not"}


@dataclass(frozen=True)
class Aggregates:
    """Everything the report rows are built from (all small, collected frames)."""

    cells: pl.DataFrame
    market_q: pl.DataFrame
    group_q: pl.DataFrame
    lineage: pl.DataFrame
    dims: tuple[str, ...]


def _hours() -> pl.Expr:
    return (pl.col("decided_at") - pl.col("created_at")).dt.total_seconds(fractional=True) / 3600.0


def _quantiles() -> list[pl.Expr]:
    hours = _hours()
    out = [
        hours.median().alias("hours_to_decision_p50"),
        hours.quantile(0.9, interpolation="linear").alias("hours_to_decision_p90"),
    ]
    for q in SCORE_QUANTILES:
        out.append(pl.col("score").quantile(q, interpolation="linear").alias(f"score_p{round(q * 100)}"))
    return out


def plan(current: pl.LazyFrame, *, dims: Sequence[str], groups: Sequence[str]) -> list[pl.LazyFrame]:
    """The lazy frames of :class:`Aggregates`, in field order (cells, market_q, group_q, lineage)."""
    dims = list(dims)
    cell_keys = list(dict.fromkeys(["market", *dims, "language", *STRATUM_COLS, "action", "automated"]))
    cells = current.group_by(cell_keys).agg(pl.len().alias("n"))
    market_q = current.group_by(["market", *dims]).agg(_quantiles())
    item = pl.col("content_id").hash(seed=11)
    per_group = [
        current.filter(pl.col("market").is_in(list(mk.GROUPS[g])))
        .group_by(dims)
        .agg(item.n_unique().alias("items"), *_quantiles())
        .with_columns(pl.lit(g).alias("region"))
        for g in groups
    ]
    group_q = pl.concat(per_group, how="vertical") if per_group else pl.LazyFrame()
    lineage = current.group_by(["market", *dims, "policy_version", "model_name", "model_version", "run_id"]).agg(
        pl.len().alias("n")
    )
    return [cells, market_q, group_q, lineage]


def collect(current: pl.LazyFrame, *, dims: Sequence[str], groups: Sequence[str]) -> Aggregates:
    frames = pl.collect_all(plan(current, dims=dims, groups=groups))
    return Aggregates(cells=frames[0], market_q=frames[1], group_q=frames[2], lineage=frames[3], dims=tuple(dims))


def with_regions(frame: pl.DataFrame, groups: Sequence[str]) -> pl.DataFrame:
    """``frame`` (with a ``market`` column) once per market and once per group containing it.

    Adds ``region`` and ``region_kind`` (``market``/``group``); used to roll cells and lineage
    up into groups by plain sums.
    """
    markets = frame.with_columns(pl.col("market").alias("region"), pl.lit("market").alias("region_kind"))
    mapping = pl.DataFrame(
        [(m, g) for g in groups for m in mk.GROUPS[g]], schema={"market": pl.String, "region": pl.String}, orient="row"
    )
    grouped = frame.join(mapping, on="market", how="inner").with_columns(pl.lit("group").alias("region_kind"))
    return pl.concat([markets, grouped.select(markets.columns)], how="vertical")


def count_rows(agg: Aggregates, groups: Sequence[str]) -> pl.DataFrame:
    """Per region × policy (× breakdowns): decision counts by action and automation."""
    keys = ["region", "region_kind", *agg.dims]
    cells = with_regions(agg.cells, groups)
    actioned = pl.col("action") != "none"
    exprs = [pl.col("n").sum().alias("decisions")]
    exprs += [pl.col("n").filter(pl.col("action") == a).sum().alias(f"action_{a}") for a in ACTIONS]
    exprs.append(pl.col("n").filter(actioned).sum().alias("actioned"))
    exprs += [
        pl.col("n").filter(actioned & (pl.col("automated") == value)).sum().alias(f"automated_{name}")
        for value, name in AUTOMATED_COLS.items()
    ]
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
