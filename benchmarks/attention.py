"""Benchmark: kernels.fused_attention (Triton) against torch SDPA backends, fixed and ragged lengths.

GPU only (not a test). Prints one line per case, then one JSON line with every figure last.

    python benchmarks/attention.py                 # bf16, all suites
    python benchmarks/attention.py --dtype float16 --suite bert --rep 200

Shapes: BERT-base (12 heads x 64) and XLM-R-large (16 x 64) at 128/256/512 tokens, ViT-B/16 (197 tokens),
and the FlashAttention suite (batch * seq = 16k tokens, head dim 64 and 128 with 2048 / head_dim heads,
seq 512..16k). Each shape runs with fixed lengths and with ragged lengths (uniform in 16..L, seeded).

Figures per case: median time (ms), useful TFLOP/s = 4 * sum(L_i^2) * heads * head_dim / time (padding is
not useful work), and ``speedup_vs_<baseline>`` = baseline time / Triton time, where baselines are torch SDPA
pinned to one backend: FLASH on fixed lengths (no mask); EFFICIENT and CUDNN without a mask on fixed lengths
and with the padding mask as transformers passes it (boolean [batch, 1, L, L]) on ragged ones. On ragged
lengths the Triton varlen path (packed tokens) is timed as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# Run from a plain checkout too (GPU machines carry no install of this project).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_DEV = "cuda"

SUITES = {
    "bert": [("bert-base", 12, 64, 32, seq) for seq in (128, 256, 512)]
    + [("xlmr-large", 16, 64, 32, seq) for seq in (128, 256, 512)],
    "vit": [("vit-b16", 12, 64, 64, 197)],
    "fa": [
        (f"fa-d{d}", 2048 // d, d, 16384 // seq, seq) for d in (64, 128) for seq in (512, 1024, 2048, 4096, 8192, 16384)
    ],
}


def _bench(fn: Callable[[], Any], rep: int) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=max(10, rep // 4), rep=rep, return_mode="median"))


def _sdpa(backend: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> Callable:
    from torch.nn.attention import sdpa_kernel

    def run() -> torch.Tensor:
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return run


def _case(name: str, heads: int, dim: int, batch: int, seq: int, ragged: bool, dtype: torch.dtype, rep: int) -> dict:
    from torch.nn.attention import SDPBackend

    import kernels

    gen = torch.Generator().manual_seed(seq * 1000 + heads * 10 + int(ragged))
    lengths = torch.randint(min(16, seq), seq + 1, (batch,), generator=gen) if ragged else torch.full((batch,), seq)
    lengths_dev = lengths.to(_DEV, torch.int32)
    q, k, v = (torch.randn(batch, heads, seq, dim, device=_DEV, dtype=dtype) for _ in range(3))
    useful = 4.0 * float((lengths.double() ** 2).sum()) * heads * dim
    res: dict[str, Any] = {
        "case": name,
        "lengths": "ragged" if ragged else "fixed",
        "batch": batch,
        "heads": heads,
        "head_dim": dim,
        "seq": seq,
        "tokens": int(lengths.sum()),
        "padding_share": round(1.0 - float(lengths.sum()) / (batch * seq), 3),
    }

    key_lengths = lengths_dev if ragged else None
    out = kernels.fused_attention(q, k, v, key_lengths=key_lengths)
    t = _bench(lambda: kernels.fused_attention(q, k, v, key_lengths=key_lengths), rep)
    res["triton_ms"] = round(t, 4)
    res["triton_tflops"] = round(useful / t / 1e9, 1)

    timings: dict[str, float | str] = {}
    if ragged:
        keep = torch.arange(seq, device=_DEV)[None, :] < lengths_dev[:, None]
        mask = keep[:, None, None, :].expand(batch, 1, seq, seq)  # what transformers' sdpa_mask hands over
        cu = torch.zeros(batch + 1, dtype=torch.int32, device=_DEV)
        cu[1:] = lengths_dev.cumsum(0)
        total = int(lengths.sum())
        packed = [torch.randn(total, heads, dim, device=_DEV, dtype=dtype) for _ in range(3)]
        tv = _bench(lambda: kernels.fused_attention_varlen(*packed, cu, seq), rep)
        res["triton_varlen_ms"] = round(tv, 4)
        res["triton_varlen_tflops"] = round(useful / tv / 1e9, 1)
        baselines = {"sdpa_efficient_mask": (SDPBackend.EFFICIENT_ATTENTION, mask),
                     "sdpa_cudnn_mask": (SDPBackend.CUDNN_ATTENTION, mask)}  # fmt: skip
    else:
        mask = None
        baselines = {
            "sdpa_flash": (SDPBackend.FLASH_ATTENTION, None),
            "sdpa_efficient": (SDPBackend.EFFICIENT_ATTENTION, None),
            "sdpa_cudnn": (SDPBackend.CUDNN_ATTENTION, None),
        }
    for label, (backend, m) in baselines.items():
        try:
            fn = _sdpa(backend, q, k, v, m)
            ref = fn()
            timings[label] = _bench(fn, rep)
        except RuntimeError as exc:  # backend not available for this shape / dtype / mask
            timings[label] = f"unavailable: {str(exc).splitlines()[0][:120]}"
            continue
        valid = torch.arange(seq, device=_DEV)[None, :] < lengths_dev[:, None]
        diff = (out.float() - ref.float()).permute(0, 2, 1, 3)[valid].abs().max()
        res.setdefault("max_abs_diff_vs_sdpa", 0.0)
        res["max_abs_diff_vs_sdpa"] = max(res["max_abs_diff_vs_sdpa"], round(float(diff), 5))
    for label, val in timings.items():
        if isinstance(val, str):
            res[f"{label}_ms"] = None
            res[f"speedup_vs_{label}"] = None
            res[f"{label}_note"] = val
        else:
            res[f"{label}_ms"] = round(val, 4)
            res[f"speedup_vs_{label}"] = round(val / t, 3)
    return res


def _machine() -> dict[str, Any]:
    import transformers
    import triton

    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    parser.add_argument("--rep", type=int, default=100, help="timing window per measurement (ms, do_bench)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/attention.py needs a CUDA GPU (none found); no figures recorded", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    results = []
    for suite in suites:
        for name, heads, dim, batch, seq in SUITES[suite]:
            for ragged in (False, True):
                res = _case(name, heads, dim, batch, seq, ragged, dtype, args.rep)
                results.append(res)
                torch.cuda.empty_cache()
                base = "sdpa_efficient_mask" if ragged else "sdpa_flash"
                print(
                    f"{name:12s} B={batch:<3d} H={heads:<2d} D={dim:<3d} L={seq:<5d} {res['lengths']:6s} "
                    f"triton {res['triton_ms']:.3f} ms {res['triton_tflops']:6.1f} TFLOP/s  "
                    f"x{res.get(f'speedup_vs_{base}')} vs {base}",
                    flush=True,
                )
    speedups = [r["speedup_vs_sdpa_efficient_mask"] for r in results if r.get("speedup_vs_sdpa_efficient_mask")]
    summary = {
        "geomean_speedup_ragged_vs_efficient_mask": round(math.exp(sum(map(math.log, speedups)) / len(speedups)), 3)
        if speedups
        else None
    }
    print(json.dumps({"benchmark": "attention", "dtype": args.dtype, "machine": _machine(), "summary": summary,
                      "results": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
