"""Kernel tier: the Triton kernel against the torch reference.

Runs in its own pytest process (``pytest tests/kernels``; the default run never collects it). Without
CUDA, TRITON_INTERPRET=1 is set here, before anything imports triton (``@triton.jit`` reads it at
decoration time), so the real kernel runs on CPU tensors through the interpreter. With CUDA the same
tests run the compiled kernel on the GPU, and ``gpu``-marked tests run too.
"""

from __future__ import annotations

import os
import sys
import zlib

import torch

# On a GPU the tests check correctness, not speed: one tile per autotune key instead of timing
# every candidate (see kernels.attention.AUTOTUNE). Set before kernels.attention is imported.
os.environ.setdefault("KERNELS_AUTOTUNE", "0")
if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton was imported before tests/kernels/conftest.py could set TRITON_INTERPRET=1")
    os.environ["TRITON_INTERPRET"] = "1"

import pytest

import kernels._dispatch

HAS_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
# Relative error ||out - ref|| / ||ref|| allowed per dtype (the reference computes in float64).
REL_TOL = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _poisoned_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel outputs start as NaN, so a row the kernel forgets to write fails the comparison."""

    def _nan_like(t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, float("nan"), memory_format=torch.contiguous_format)

    monkeypatch.setattr(kernels._dispatch, "_empty_like", _nan_like)


class Kit:
    """What kernel tests share: device, tolerances, fresh random inputs and ``assert_close``."""

    device = DEVICE
    rel_tol = REL_TOL

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, generator=self._gen).to(device=DEVICE, dtype=dtype)

    def randint(self, low: int, high: int) -> int:
        """An int in ``[low, high]``."""
        return int(torch.randint(low, high + 1, (1,), generator=self._gen))

    @staticmethod
    def assert_close(out: torch.Tensor, ref: torch.Tensor, rel_tol: float, what: str = "output") -> None:
        assert_close(out, ref, rel_tol, what)


@pytest.fixture
def kit(request: pytest.FixtureRequest) -> Kit:
    """Fresh random inputs per test case, reproducible from the test id."""
    return Kit(zlib.crc32(request.node.nodeid.encode()))


def assert_close(out: torch.Tensor, ref: torch.Tensor, rel_tol: float, what: str = "output") -> None:
    """Relative error ||out - ref|| / ||ref|| under ``rel_tol``; on failure say where it is worst."""
    out64, ref64 = out.detach().to("cpu", torch.float64), ref.detach().to("cpu", torch.float64)
    assert out64.shape == ref64.shape, f"{what}: shape {tuple(out64.shape)} != reference {tuple(ref64.shape)}"
    nan = torch.isnan(out64)
    if nan.any():
        rows = sorted({tuple(i[:-1]) for i in nan.nonzero().tolist()})
        pytest.fail(f"{what}: {int(nan.sum())} NaN values (unwritten?), first rows (index without dim): {rows[:8]}")
    err = (out64 - ref64).norm() / ref64.norm().clamp_min(1e-30)
    if err > rel_tol:
        diff = (out64 - ref64).abs()
        worst = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        row_err = diff.flatten(0, -2).amax(-1) if diff.ndim > 1 else diff
        bad_rows = (row_err > rel_tol * ref64.abs().max()).nonzero().flatten().tolist()
        pytest.fail(
            f"{what}: relative error {float(err):.3e} > {rel_tol:.0e}; worst at {worst}: "
            f"got {out64[worst]:.6g}, want {ref64[worst]:.6g}; {len(bad_rows)} bad rows "
            f"(flat row ids, first 10: {bad_rows[:10]})"
        )
