"""How pipelines configures polars in the Ray workers that run its tasks (pipelines/__init__.py).

Each probe asks for its own runtime environment, so Ray starts a fresh worker for it: the
first thing that worker imports is pipelines, as in a worker that runs our tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("ray_cluster")

ROWS = 20_000_000  # two Int64 columns: 320 MB, about 80 k pages


def _probe() -> dict[str, object]:
    """In a worker: polars' threads and allocator setting, and the page faults of the same
    allocation made twice, 2 s apart (longer than polars' own decay, shorter than ours)."""
    import importlib
    import os
    import resource
    import time

    importlib.import_module("pipelines")  # before polars, as in a worker running our tasks
    import polars as pl

    faults = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        frame = pl.DataFrame({"a": pl.int_range(0, ROWS, eager=True)}).with_columns(b=pl.col("a") * 2)
        del frame
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        time.sleep(2)
    return {"threads": pl.thread_pool_size(), "conf": os.environ.get("_RJEM_MALLOC_CONF", ""), "faults": faults}


def _numpy_probe() -> list[int]:
    """In a worker: the page faults of numpy arrays (glibc's malloc) of a task's sizes (4-30 MiB),
    made and freed four times over."""
    import importlib
    import resource

    importlib.import_module("pipelines")
    import numpy as np

    faults = []
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        arrays = [np.ones(mib << 17) for mib in (4, 8, 16, 24, 30, 12)]
        del arrays
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def _run_in_fresh_worker(env: dict[str, str], probe: Callable[[], Any] = _probe) -> Any:
    import ray

    task = ray.remote(num_cpus=1, runtime_env={"env_vars": env})(probe)
    return ray.get(task.remote(), timeout=120)


def test_worker_runs_one_polars_thread_and_keeps_its_pages_between_tasks() -> None:
    from pipelines import WORKER_MALLOC_CONF

    out = _run_in_fresh_worker({"TRUSTBATCH_TEST_WORKER": "kept"})
    assert out["threads"] == 1  # the task's one CPU, not every core of the machine
    assert str(out["conf"]).endswith(WORKER_MALLOC_CONF)
    first, second = out["faults"]  # type: ignore[misc]
    assert first > 40_000  # the memory was really touched
    assert second < first / 3, out  # the second allocation reused the pages the first freed


def test_one_allocator_arena_only_where_polars_runs_one_thread() -> None:
    """A task's worker (one polars thread) shares one jemalloc arena between its threads; a
    worker whose polars runs several threads at once keeps jemalloc's arenas per thread."""
    from pipelines import WORKER_MALLOC_CONF, WORKER_ONE_ARENA

    one = _run_in_fresh_worker({"TRUSTBATCH_TEST_WORKER": "one-arena"})
    assert one["threads"] == 1 and WORKER_ONE_ARENA in str(one["conf"]).split(",")
    two = _run_in_fresh_worker({"TRUSTBATCH_TEST_WORKER": "two-threads", "POLARS_MAX_THREADS": "2"})
    assert two["threads"] == 2 and str(two["conf"]).endswith(WORKER_MALLOC_CONF)
    assert WORKER_ONE_ARENA not in str(two["conf"]).split(","), two


def test_empty_setting_leaves_polars_allocator_as_it_is() -> None:
    from pipelines import WORKER_MALLOC_CONF

    out = _run_in_fresh_worker({"TRUSTBATCH_WORKER_MALLOC_CONF": ""})
    assert WORKER_MALLOC_CONF not in str(out["conf"])
    first, second = out["faults"]  # type: ignore[misc]
    # polars' own setting gives the pages back within a second: the second allocation faults
    # them in again (what every audit range paid before).
    assert second > first / 2, out


def test_worker_keeps_the_memory_of_freed_numpy_arrays_for_its_next_task() -> None:
    first, *later = _run_in_fresh_worker({"TRUSTBATCH_TEST_WORKER": "numpy"}, _numpy_probe)
    assert first > 1_000  # the memory was really touched
    assert max(later) < first / 10, (first, later)  # then taken from the heap glibc kept


def test_zero_keep_leaves_glibc_malloc_as_it_is() -> None:
    first, *later = _run_in_fresh_worker({"TRUSTBATCH_WORKER_MALLOC_KEEP_MB": "0"}, _numpy_probe)
    # glibc's own thresholds give some of the arrays back: the later rounds fault them in again.
    assert max(later) > first / 3, (first, later)
