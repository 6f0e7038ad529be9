"""Turn review labels and decision counts into per-domain precision / recall / accuracy.

A domain is one report row (a market or a group × policy × breakdowns) or one language ×
policy over all markets. Its population cells come from the aggregated decision counts; its
sample cells from the labelled units whose items have a current decision in the domain
(one unit per item and cell: an item shown in several markets of a group is one review).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from pipelines.audit.estimators import Cells, Estimate, estimate, kish, rng_for

CELL: tuple[str, ...] = ("region_group", "score_band", "changed", "flagged")
COARSE: tuple[str, ...] = ("score_band", "flagged")
METRICS: tuple[str, ...] = ("precision", "recall", "accuracy")


def domain_cells(population: pl.DataFrame, units: pl.DataFrame) -> Cells:
    """Population counts (CELL + ``m``) and labelled units (CELL + ``y``, one row per unit) -> cells.

    Each unit's weight is ``M / n`` of its fine cell (stratum × flagged); units are then
    pooled into coarse cells (score band × flagged), see :mod:`pipelines.audit.estimators`.
    """
    fine = population.group_by(CELL).agg(pl.col("m").sum())
    # Sorted, and float sums done in numpy in that order: polars' parallel float sums may
    # add in a different order run to run, and a pinned report must be identical bit for bit.
    weighted = (
        units.join(units.group_by(CELL).agg(pl.len().alias("__n")), on=list(CELL))
        .join(fine, on=list(CELL), how="left")
        .with_columns((pl.col("m").fill_null(0) / pl.col("__n")).alias("w"), pl.col("y").cast(pl.Float64))
        .sort([*COARSE, "content_id"])
    )
    cells = fine.group_by(COARSE).agg(pl.col("m").sum()).sort(COARSE)
    sample = weighted.group_by(COARSE, maintain_order=True).agg(
        pl.len().alias("n"), pl.col("y").sum().cast(pl.Int64).alias("x")
    )
    w_all, y_all = weighted["w"].to_numpy(), weighted["y"].to_numpy()
    q, n_eff = [], []
    start = 0
    for n in sample["n"].to_list():
        w, y = w_all[start : start + n], y_all[start : start + n]
        q.append(float(np.sum(w * y) / np.sum(w)) if np.sum(w) > 0 else 0.0)
        n_eff.append(kish(w) or 0.0)
        start += n
    sample = sample.with_columns(pl.Series("q", q, dtype=pl.Float64), pl.Series("n_eff", n_eff, dtype=pl.Float64))
    joined = (
        cells.join(sample, on=list(COARSE), how="full", coalesce=True)
        .with_columns(pl.col("m", "n", "x").fill_null(0), pl.col("q", "n_eff").fill_null(0.0))
        .sort(COARSE)
    )
    w = w_all
    return Cells(
        m=joined["m"].to_numpy(),
        n=joined["n"].to_numpy(),
        x=joined["x"].to_numpy(),
        q=joined["q"].to_numpy(),
        n_eff=joined["n_eff"].to_numpy(),
        flagged=joined["flagged"].to_numpy().astype(bool),
        kish_flagged=kish(w[weighted["flagged"].to_numpy().astype(bool)]),
        kish_positive=kish(w[weighted["y"].to_numpy() > 0]),
        kish_all=kish(w),
    )


def estimate_domains(
    population: pl.DataFrame,
    units: pl.DataFrame,
    keys: Sequence[str],
    *,
    draws: int,
    seed: int,
) -> pl.DataFrame:
    """Estimates for every domain named by ``keys`` in ``population``.

    population: ``keys`` + CELL + ``m``; units: ``keys`` + CELL + ``content_id`` + ``y``
    (deduplicated per domain here). Returns one row per domain: ``keys`` and, per metric,
    value, ``_low``, ``_high``, ``_n``, ``_n_eff`` and ``_imputed``.
    """
    keys = list(keys)
    units = units.unique([*keys, "content_id", "flagged"])
    pop_parts = population.partition_by(keys, as_dict=True) if keys else {(): population}
    unit_parts = units.partition_by(keys, as_dict=True) if keys and units.height else {}
    empty_units = units.head(0)
    rows = []
    for key, pop in pop_parts.items():
        sample = unit_parts.get(key, empty_units)
        name = "|".join(str(k) for k in key)
        result = estimate(domain_cells(pop, sample), draws=draws, rng=rng_for(seed, name))
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        for metric in METRICS:
            row.update(_columns(metric, result[metric]))
        rows.append(row)
    return pl.DataFrame(rows, schema=_schema(population, keys), orient="row") if rows else _empty(population, keys)


def _columns(metric: str, e: Estimate) -> dict[str, object]:
    return {
        metric: e.value,
        f"{metric}_low": e.low,
        f"{metric}_high": e.high,
        f"{metric}_n": e.n,
        f"{metric}_n_eff": e.n_eff,
        f"{metric}_imputed": e.imputed,
    }


def metric_schema() -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {}
    for metric in METRICS:
        out.update(
            {
                metric: pl.Float64(),
                f"{metric}_low": pl.Float64(),
                f"{metric}_high": pl.Float64(),
                f"{metric}_n": pl.Int64(),
                f"{metric}_n_eff": pl.Float64(),
                f"{metric}_imputed": pl.Boolean(),
            }
        )
    return out


def _schema(population: pl.DataFrame, keys: Iterable[str]) -> dict[str, pl.DataType]:
    return {**{k: population.schema[k] for k in keys}, **metric_schema()}


def _empty(population: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(schema=_schema(population, keys))
