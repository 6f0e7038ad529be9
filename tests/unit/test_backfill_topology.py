"""How a backfill splits a CPU-only cluster between preprocessing and scoring actors."""

from __future__ import annotations

import pytest

from pipelines.backfill.run import cpu_scorers


@pytest.mark.parametrize(
    ("cpus", "scorers", "threads"),
    [(1, 1, 1), (2, 2, 1), (4, 4, 1), (16, 8, 2), (64, 16, 4)],
)
def test_default_split_reserves_every_cpu_for_the_actors(cpus: int, scorers: int, threads: int) -> None:
    n, share, t = cpu_scorers(float(cpus))
    assert (n, t) == (scorers, threads)
    # All CPUs reserved: a second job's actors wait for the first job's to finish.
    assert n * share == pytest.approx(cpus)


def test_requested_scorers_share_the_cpus_and_get_threads_to_match() -> None:
    assert cpu_scorers(8.0, requested=2) == (2, 4.0, 4)
    assert cpu_scorers(2.0, requested=1) == (1, 2.0, 2)
