"""Turn review labels and decision counts into per-domain precision / recall / accuracy.

A domain is one report row (a market or a group × policy × breakdowns) or one language ×
policy over all markets. Its population cells come from the aggregated decision counts; its
sample cells from the labelled units whose items have a current decision in the domain
(one unit per item and cell: an item shown in several markets of a group is one review).

Matches of known material (``source = hash_match``) have no model score: they sit in the band
:data:`~pipelines.audit.strata.HASH_BAND`, a coarse cell of their own. A domain whose decisions
are all matches (a policy decided by banks alone, such as ``terrorist_content``) gets precision
and accuracy, but no recall: a bank decides only the items it matches, so material missing
from the list has no decision and no sample of decisions can see it (the estimator would
report 1 by construction).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from pipelines.audit.estimators import Cells, Draws, Estimate, draw, rng_for, summarize_domains
from pipelines.audit.strata import HASH_BAND

CELL: tuple[str, ...] = ("region_group", "score_band", "changed", "flagged")
COARSE: tuple[str, ...] = ("score_band", "flagged")
METRICS: tuple[str, ...] = ("precision", "recall", "accuracy")


def _sums(frame: pl.DataFrame, by: list[str], values: dict[str, np.ndarray]) -> pl.DataFrame:
    """Per-group sums of ``values`` over ``frame`` (sorted by ``by``), added in row order.

    numpy's ``add.reduceat`` adds in a fixed order, unlike polars' parallel float sums: a
    pinned report must be identical bit for bit.
    """
    groups = frame.group_by(by, maintain_order=True).agg(pl.len().alias("__len"))
    starts = np.concatenate([[0], np.cumsum(groups["__len"].to_numpy())[:-1]]).astype(np.int64)
    cols = {name: (np.add.reduceat(v, starts) if len(v) else np.zeros(0)) for name, v in values.items()}
    return groups.drop("__len").with_columns(pl.Series(k, v, dtype=pl.Float64) for k, v in cols.items())


def estimate_domains(
    population: pl.DataFrame,
    units: pl.DataFrame,
    keys: Sequence[str],
    *,
    draws: int,
    seed: int,
    threads: int | None = None,
) -> pl.DataFrame:
    """Estimates for every domain named by ``keys`` in ``population`` (vectorised over domains).

    population: ``keys`` + CELL + ``m``; units: ``keys`` + CELL + ``content_id`` + ``y``
    (deduplicated per domain here). Returns one row per domain: ``keys`` and, per metric,
    value, ``_low``, ``_high``, ``_n``, ``_n_eff`` and ``_imputed``. ``threads``: how many domains
    are computed at once (default: one per core).
    """
    keys = list(keys)
    if population.height == 0:
        return _empty(population, keys)
    fine = population.group_by([*keys, *CELL]).agg(pl.col("m").sum())
    units = units.select([*keys, *CELL, "content_id", pl.col("y").cast(pl.Float64)]).unique(
        [*keys, "content_id", "flagged"], keep="first"
    )
    weighted = (
        units.join(units.group_by([*keys, *CELL]).agg(pl.len().alias("__n")), on=[*keys, *CELL])
        .join(fine, on=[*keys, *CELL], how="left")
        .with_columns((pl.col("m").fill_null(0) / pl.col("__n")).alias("w"))
        .lazy()
        .sort([*keys, *COARSE, "content_id"])
        .collect()
    )
    w, y = weighted["w"].to_numpy(), weighted["y"].to_numpy()
    f = weighted["flagged"].to_numpy().astype(bool)
    cell_sums = _sums(weighted, [*keys, *COARSE], {"sw": w, "swy": w * y, "sw2": w * w, "n": np.ones_like(w), "x": y})
    cell_sums = cell_sums.with_columns(
        pl.when(pl.col("sw") > 0).then(pl.col("swy") / pl.col("sw")).otherwise(0.0).alias("q"),
        pl.when(pl.col("sw2") > 0).then(pl.col("sw") ** 2 / pl.col("sw2")).otherwise(0.0).alias("n_eff"),
    )
    # Same domain order; Kish sizes per domain. A total order (an item may be a unit both flagged
    # and not): the sums add in a fixed order, whatever other domains the frame holds.
    dom = weighted.lazy().sort([*keys, "content_id", "flagged"]).collect()
    wd, yd = dom["w"].to_numpy(), dom["y"].to_numpy()
    fd = dom["flagged"].to_numpy().astype(bool)
    kish_sums = _sums(
        dom, keys,
        {"a1": wd, "a2": wd * wd, "f1": wd * fd, "f2": wd * wd * fd, "p1": wd * (yd > 0), "p2": wd * wd * (yd > 0)},
    )  # fmt: skip
    del w, y, f
    coarse = (
        fine.group_by([*keys, *COARSE])
        .agg(pl.col("m").sum())
        .join(cell_sums, on=[*keys, *COARSE], how="full", coalesce=True)
        .with_columns(pl.col("m").fill_null(0), pl.col("n", "x", "q", "n_eff").fill_null(0.0))
        .join(kish_sums, on=keys, how="left")
        .sort([*keys, *COARSE])
    )
    bounds = coarse.group_by(keys, maintain_order=True).agg(pl.len().alias("__len"))
    arrays = {c: coarse[c].to_numpy() for c in ("m", "n", "x", "q", "n_eff")}
    flagged = coarse["flagged"].to_numpy().astype(bool)
    matched = (coarse["score_band"] == HASH_BAND).to_numpy()
    populated = coarse["m"].to_numpy() > 0
    kcols = {c: coarse[c].fill_null(0.0).to_numpy() for c in ("a1", "a2", "f1", "f2", "p1", "p2")}

    def k(a: str, i: int) -> float | None:
        s2 = kcols[f"{a}2"][i]
        return float(kcols[f"{a}1"][i] ** 2 / s2) if s2 > 0 else None

    lengths = bounds["__len"].to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def domain(i: int, key: tuple[object, ...]) -> dict[str, Draws | None]:
        start = int(starts[i])
        sl = slice(start, start + int(lengths[i]))
        cells = Cells(
            m=arrays["m"][sl], n=arrays["n"][sl].astype(np.int64), x=arrays["x"][sl].astype(np.int64),
            q=arrays["q"][sl], n_eff=arrays["n_eff"][sl], flagged=flagged[sl],
            kish_flagged=k("f", start), kish_positive=k("p", start), kish_all=k("a", start),
        )  # fmt: skip
        # Each domain draws from its own generator (seeded by its name): the order in which
        # domains are computed, or the thread, never changes a value.
        drawn = draw(cells, draws=draws, rng=rng_for(seed, "|".join(str(v) for v in key)))
        if np.all(matched[sl] | ~populated[sl]):
            drawn["recall"] = None  # decided by banks alone: what the lists miss is never decided
        return drawn

    domains = list(enumerate(bounds.drop("__len").iter_rows()))
    workers = min(len(domains), threads or os.cpu_count() or 1)
    if workers <= 1:
        drawn = [domain(*d) for d in domains]  # no pool to start and hand each domain to
    else:
        # numpy's draws release the GIL: one thread per core.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            drawn = list(pool.map(lambda d: domain(*d), domains))
    rows = []
    for (_, key), result in zip(domains, summarize_domains(drawn), strict=True):
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        for metric in METRICS:
            row.update(_columns(metric, result[metric]))
        rows.append(row)
    return pl.DataFrame(rows, schema=_schema(population, keys), orient="row")


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
