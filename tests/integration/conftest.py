"""Integration tier: one local Ray for the whole test session, tmp Delta lakes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# A worker that inherited the Triton interpreter flag would score through it for hours.
os.environ.pop("TRITON_INTERPRET", None)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """Start one local Ray (2 CPUs) for every integration test; yields its address."""
    import ray

    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield ctx.address_info["address"]
    finally:
        ray.shutdown()
