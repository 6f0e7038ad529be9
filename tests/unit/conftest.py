"""Unit tier: fast, no Ray. Starting Ray here is a bug, so ray.init raises."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a hard dependency
        return

    def _refuse(*_a: object, **_k: object) -> None:
        raise RuntimeError("tests/unit may not start Ray: move this test to tests/integration")

    monkeypatch.setattr(ray, "init", _refuse)
