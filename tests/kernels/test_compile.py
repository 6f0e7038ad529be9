"""The GPU build of the kernel compiles (to PTX and cubin via triton's bundled ptxas) without a GPU.

The interpreter accepts code the compiler may reject (type unification across branches, constexpr use),
so this compiles the non-interpreted kernel ahead of time for Hopper (sm_90) and Ampere (sm_80) in a
subprocess without TRITON_INTERPRET. It checks compilation only; numbers come from the GPU tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kernels.attention import _fwd_kernel

cap, dtype, head_dim, varlen, has_lengths = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
names = _fwd_kernel.arg_names
constexprs = {
    "HEAD_DIM": head_dim, "BLOCK_D": max(16, triton.next_power_of_2(head_dim)), "IS_VARLEN": varlen,
    "HAS_LENGTHS": has_lengths, "DOT_PRECISION": "ieee" if dtype == "fp32" else "tf32", "BLOCK_M": 128, "BLOCK_N": 64,
}
signature = {}
for name in names:
    if name in ("Q", "K", "V", "Out"):
        signature[name] = "*" + dtype
    elif name in ("Lengths", "CuSeqlens"):
        signature[name] = "*i32"
    elif name == "sm_scale":
        signature[name] = "fp32"
    elif name in constexprs:
        signature[name] = "constexpr"
    else:
        signature[name] = "i32"
src = ASTSource(fn=_fwd_kernel, signature=signature, constexprs={(names.index(k),): v for k, v in constexprs.items()})
kernel = triton.compile(src, target=GPUTarget("cuda", cap, 32), options={"num_warps": 8, "num_stages": 3})
assert kernel.asm.get("cubin"), "no cubin produced"
print("compiled", cap, dtype, head_dim, "shared", kernel.metadata.shared)
"""


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the other tests compile and run the kernel")
@pytest.mark.parametrize(
    ("cap", "dtype", "head_dim", "varlen", "has_lengths"),
    [(90, "bf16", 80, False, True), (80, "fp16", 64, True, False)],
)
def test_gpu_kernel_compiles_ahead_of_time(
    cap: int, dtype: str, head_dim: int, varlen: bool, has_lengths: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    args = [str(cap), dtype, str(head_dim), str(int(varlen)), str(int(has_lengths))]
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's bundled ptxas is not available here")
    assert proc.returncode == 0, f"compiling for sm_{cap} failed:\n{proc.stderr[-3000:]}"
