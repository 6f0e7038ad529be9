"""The estimators' domains computed beside the driver's other work: on Ray tasks after a pass on
Ray (the cluster's workers are idle once the partials are in), else on a thread of this process.

Each domain's estimate depends only on that domain's population cells and labelled units, and
draws from its own generator (:func:`pipelines.audit.estimators.rng_for`), so splitting the
domains among tasks changes no value: the parts are joined and sorted by the domain keys, the
order :func:`~pipelines.audit.accuracy.estimate_domains` returns them in. On 2 cores this takes
the estimators' 0.5 s off the driver's serial work at 10^7 rows (their posterior draws are
numpy calls that hold the GIL between them, so threads of one process overlap them poorly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from pipelines.audit.accuracy import estimate_domains
from pipelines.buckets import hash_columns

MAX_PARTS = 8
"""At most this many tasks per call: a report has hundreds of domains, about 1.5 ms each."""


def start(
    population: pl.DataFrame,
    units: pl.DataFrame,
    keys: Sequence[str],
    *,
    draws: int,
    seed: int,
    on_ray: bool,
) -> Callable[[], pl.DataFrame]:
    """Start :func:`~pipelines.audit.accuracy.estimate_domains`; returns what waits for its result."""
    keys = list(keys)
    if not on_ray:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-estimates")
        future = pool.submit(estimate_domains, population, units, keys, draws=draws, seed=seed)
        pool.shutdown(wait=False)  # the one job runs to its end
        return future.result
    import ray

    # Twice as many tasks as cores: domains differ in cost (their cells), and small tasks let
    # the cores even out the load instead of one big part finishing last (measured on 2 cores:
    # parts of 0.68 and 0.43 s with one task per core).
    parts = max(1, min(MAX_PARTS, 2 * int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(max_retries=3)(_estimate)
    refs = [task.remote(pop, units_p, keys, draws, seed) for pop, units_p in split(population, units, keys, parts)]

    def result() -> pl.DataFrame:
        frames = ray.get(refs)
        return pl.concat(frames, how="vertical_relaxed").sort(keys)

    return result


def split(
    population: pl.DataFrame, units: pl.DataFrame, keys: Sequence[str], parts: int
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """``parts`` pairs (population, units), each domain (a value of ``keys``) in exactly one."""
    part = (hash_columns(list(keys), seed=1300) % parts).alias("__part")
    population, units = population.with_columns(part), units.with_columns(part)
    return [
        (population.filter(pl.col("__part") == p).drop("__part"), units.filter(pl.col("__part") == p).drop("__part"))
        for p in range(parts)
    ]


def _estimate(population: pl.DataFrame, units: pl.DataFrame, keys: list[str], draws: int, seed: int) -> pl.DataFrame:
    # One thread: the task reserves one CPU.
    return estimate_domains(population, units, keys, draws=draws, seed=seed, threads=1)
