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

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from pipelines.audit.accuracy import CELL, estimate_domains
from pipelines.buckets import hash_columns

MAX_PARTS = 8
"""At most this many tasks: a report has hundreds of domains, about 1.5 ms each."""

Job = tuple[pl.DataFrame, pl.DataFrame, Sequence[str]]
"""One set of domains to estimate: population cells, labelled units and the domain keys
(the arguments of :func:`~pipelines.audit.accuracy.estimate_domains`)."""


def start(jobs: Sequence[Job], *, draws: int, seed: int, on_ray: bool) -> list[Callable[[], pl.DataFrame]]:
    """Start :func:`~pipelines.audit.accuracy.estimate_domains` for each job; returns, per job,
    what waits for its result."""
    if not on_ray:
        results: list[Callable[[], pl.DataFrame]] = []
        for population, units, keys in jobs:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-estimates")
            results.append(pool.submit(estimate_domains, population, units, list(keys), draws=draws, seed=seed).result)
            pool.shutdown(wait=False)  # the one job runs to its end
        return results
    import ray

    # Twice as many tasks as cores: domains differ in cost (their cells), and small tasks let
    # the cores even out the load instead of one big part finishing last (measured on 2 cores:
    # parts of 0.68 and 0.43 s with one task per core). Every task takes a share of every job's
    # domains: its fixed costs (Ray's dispatch, polars' preparation) are paid once, not per job
    # (the 10^7-row audit's region and language estimates: 0.7-0.9 CPU-s in 4 tasks, against
    # 0.95-1.1 in 8).
    parts = max(1, min(MAX_PARTS, 2 * int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(max_retries=3)(_estimate)
    # Only the columns the estimators read are shipped (the labelled units carry a few more).
    shares = [
        split(population, units.select(*keys, *CELL, "content_id", "y"), keys, parts)
        for population, units, keys in jobs
    ]
    refs = [
        task.remote([(*shares[j][p], list(keys)) for j, (_, _, keys) in enumerate(jobs)], draws, seed)
        for p in range(parts)
    ]
    gathered = functools.cache(lambda: ray.get(refs))  # every task's frames, fetched once

    def result(j: int) -> pl.DataFrame:
        return pl.concat([frames[j] for frames in gathered()], how="vertical_relaxed").sort(list(jobs[j][2]))

    return [lambda j=j: result(j) for j in range(len(jobs))]  # type: ignore[misc]


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


def _estimate(jobs: list[tuple[pl.DataFrame, pl.DataFrame, list[str]]], draws: int, seed: int) -> list[pl.DataFrame]:
    # One thread: the task reserves one CPU.
    return [
        estimate_domains(population, units, keys, draws=draws, seed=seed, threads=1) for population, units, keys in jobs
    ]
