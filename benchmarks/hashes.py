"""Exact PDQ range matching speed: numpy, faiss-cpu flat, our CPU matcher, the Triton kernel.

Data: ``--stored`` random 256-bit hashes (default 10^6) and ``--bank`` entries (default 10^4), of
which ``--planted`` are near duplicates of stored hashes, 0-40 bits off (so some lie just past the
threshold). Every method must return the same pairs at distance <= ``--threshold`` (31).

Measured in one run (comparisons/s = stored x bank / seconds; medians of ``--repeats`` runs,
faiss and ours alternating so that load on a shared machine hits both alike; ratios also from the
best pass of each and from CPU seconds, which other jobs on the cores do not inflate):
1. numpy XOR + popcount (``kernels.reference``) on the first ``--numpy-stored`` stored rows;
2. faiss-cpu ``IndexBinaryFlat`` range search, the bank indexed and the stored hashes as queries
   (how HMA uses it): the baseline;
3. ``pipelines.hashes.match_hashes`` (target: >= 0.9x the baseline, exact);
4. ``kernels.hamming_matches`` on CUDA when a GPU is present (inputs resident on the GPU; time
   includes the sort of the output, not the host-to-device copy), and its exactness.

    python benchmarks/hashes.py [--stored 1000000] [--bank 10000] [--repeats 3]
    python benchmarks/hashes.py --gpu-only     # GPU machine: needs only torch, triton, numpy

``--gpu-only`` skips 1-3 and checks the kernel's pairs against the planted truth, the numpy
reference on a subset, a recount of every returned distance, and the kernel's own SWAR path.
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from _machine import machine  # benchmarks/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.pop("TRITON_INTERPRET", None)  # the real GPU kernel, never the interpreter


def make_data(n_stored: int, n_bank: int, n_planted: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random stored and bank hashes (uint8 [n, 32]); ``n_planted`` bank rows are stored rows with 0-40 bits flipped.

    Returns (stored, bank, planted) with planted = int64 [n_planted, 3]: stored row, bank row, distance.
    """
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 256, (n_stored, 32), dtype=np.uint8)
    bank = rng.integers(0, 256, (n_bank, 32), dtype=np.uint8)
    rows_b = rng.choice(n_bank, size=min(n_planted, n_bank), replace=False)
    rows_s = np.asarray(rng.integers(0, n_stored, size=rows_b.shape[0]), dtype=np.int64)
    planted = []
    for k in range(rows_b.shape[0]):
        i, j = int(rows_s[k]), int(rows_b[k])
        n_bits = k % 41
        bits = np.unpackbits(stored[i])
        bits[rng.choice(256, n_bits, replace=False)] ^= 1
        bank[j] = np.packbits(bits)
        planted.append((i, j, n_bits))
    return stored, bank, np.asarray(planted, dtype=np.int64).reshape(-1, 3)


T = TypeVar("T")


def _pairs(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> set[tuple[int, int, int]]:
    return set(zip(np.asarray(i).tolist(), np.asarray(j).tolist(), np.asarray(d).tolist(), strict=True))


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _timed_cpu(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(wall seconds, CPU seconds of this process over all threads, result): CPU seconds stay
    comparable when other jobs share the cores, wall seconds do not."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def cpu_part(stored: np.ndarray, bank: np.ndarray, planted: np.ndarray, args: argparse.Namespace) -> dict:
    import faiss
    import torch

    from kernels.reference import hamming_matches_reference
    from pipelines.hashes import match_hashes

    comparisons = stored.shape[0] * bank.shape[0]
    thr = args.threshold

    def faiss_flat() -> set[tuple[int, int, int]]:
        index = faiss.IndexBinaryFlat(256)
        index.add(bank)
        lims, dist, rows = index.range_search(stored, thr + 1)  # faiss keeps distance < radius
        qi = np.repeat(np.arange(stored.shape[0]), np.diff(lims).astype(np.int64))
        return _pairs(qi, rows, dist.astype(np.int32))

    def ours() -> set[tuple[int, int, int]]:
        m = match_hashes(stored, bank, threshold=thr)
        return _pairs(m.stored, m.bank, m.distance)

    # Warm-up outside timing (thread pools, page faults of the inputs).
    small = stored[: min(20_000, stored.shape[0])]
    faiss.IndexBinaryFlat(256).range_search(small, thr + 1)
    match_hashes(small, bank, threshold=thr)

    faiss_s, ours_s, faiss_cpu, ours_cpu = [], [], [], []
    faiss_set: set[tuple[int, int, int]] = set()
    ours_set: set[tuple[int, int, int]] = set()
    for _ in range(args.repeats):
        t, c, faiss_set = _timed_cpu(faiss_flat)
        faiss_s.append(t)
        faiss_cpu.append(c)
        t, c, ours_set = _timed_cpu(ours)
        ours_s.append(t)
        ours_cpu.append(c)

    sub = stored[: args.numpy_stored]
    numpy_s, ref = _timed(
        lambda: hamming_matches_reference(torch.from_numpy(sub), torch.from_numpy(bank), threshold=thr)
    )
    ref_set = _pairs(ref[0].numpy(), ref[1].numpy(), ref[2].numpy())
    sub_rows = sub.shape[0]
    faiss_med, ours_med = statistics.median(faiss_s), statistics.median(ours_s)
    truth = {(int(i), int(j), int(d)) for i, j, d in planted if d <= thr}
    return {
        "numpy_reference": {
            "stored": sub_rows,
            "seconds": round(numpy_s, 3),
            "comparisons_per_s": sub_rows * bank.shape[0] / numpy_s,
        },
        "faiss_flat": {
            "seconds": [round(t, 3) for t in faiss_s],
            "cpu_seconds": [round(t, 3) for t in faiss_cpu],
            "comparisons_per_s": comparisons / faiss_med,
            "comparisons_per_cpu_s": comparisons / statistics.median(faiss_cpu),
        },
        "matcher": {
            "seconds": [round(t, 3) for t in ours_s],
            "cpu_seconds": [round(t, 3) for t in ours_cpu],
            "comparisons_per_s": comparisons / ours_med,
            "comparisons_per_cpu_s": comparisons / statistics.median(ours_cpu),
        },
        "matcher_vs_faiss": faiss_med / ours_med,
        "matcher_vs_faiss_cpu_time": statistics.median(faiss_cpu) / statistics.median(ours_cpu),
        "matcher_vs_faiss_best_of": min(faiss_s) / min(ours_s),
        "pairs": len(ours_set),
        "exact": {
            "matcher_equals_faiss": ours_set == faiss_set,
            "numpy_subset_equals_matcher_subset": ref_set == {p for p in ours_set if p[0] < sub_rows},
            "planted_within_threshold_found": truth <= ours_set,
        },
        "_pairs": ours_set,
        "versions": {"faiss": faiss.__version__, "numpy": np.__version__},
    }


def gpu_part(
    stored: np.ndarray, bank: np.ndarray, planted: np.ndarray, args: argparse.Namespace, cpu_pairs: set | None
) -> dict:
    import torch

    import kernels
    from kernels import hamming
    from kernels.reference import hamming_matches_reference

    thr = args.threshold
    s_gpu, b_gpu = torch.from_numpy(stored).cuda(), torch.from_numpy(bank).cuda()
    kernels.hamming_matches(s_gpu, b_gpu, threshold=thr)  # autotune + compile outside timing
    torch.cuda.synchronize()
    times = []
    for _ in range(max(3, args.repeats)):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = kernels.hamming_matches(s_gpu, b_gpu, threshold=thr)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    i, j, d = (t.cpu().numpy() for t in out)
    got = _pairs(i, j, d)

    # Exactness without faiss: planted truth, recounted distances, a numpy subset, the SWAR path.
    recount = np.unpackbits(stored[i] ^ bank[j], axis=1).sum(axis=1) if i.size else np.zeros(0, np.int64)
    sub = stored[: args.numpy_stored]
    ref = hamming_matches_reference(torch.from_numpy(sub), torch.from_numpy(bank), threshold=thr)
    ref_set = _pairs(ref[0].numpy(), ref[1].numpy(), ref[2].numpy())
    popc = hamming._HAS_POPC
    hamming._HAS_POPC = False
    try:
        si, sj, sd = kernels.hamming_matches(s_gpu, b_gpu, threshold=thr)
        swar = _pairs(si.cpu().numpy(), sj.cpu().numpy(), sd.cpu().numpy())
    finally:
        hamming._HAS_POPC = popc
    truth = {(int(a), int(b), int(c)) for a, b, c in planted if c <= thr}
    median = statistics.median(times)
    result = {
        "gpu": torch.cuda.get_device_name(),
        "seconds": [round(t, 5) for t in times],
        "comparisons_per_s": stored.shape[0] * bank.shape[0] / median,
        "popcount": "libdevice.popc" if popc and not hamming.INTERPRETED else "swar",
        "pairs": len(got),
        "exact": {
            "planted_within_threshold_found": truth <= got,
            "distances_recounted": bool(np.array_equal(recount, d) and (d <= thr).all()),
            "numpy_subset_equals_kernel_subset": ref_set == {p for p in got if p[0] < sub.shape[0]},
            "swar_path_equals_popc_path": swar == got,
        },
        "versions": {"triton": __import__("triton").__version__},
    }
    if cpu_pairs is not None:
        result["exact"]["kernel_equals_matcher"] = got == cpu_pairs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--bank", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=1_000)
    parser.add_argument("--threshold", type=int, default=31)
    parser.add_argument("--numpy-stored", type=int, default=20_000, help="stored rows the numpy reference scans")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu-only", action="store_true", help="only the Triton kernel (needs torch, triton, numpy)")
    args = parser.parse_args()

    stored, bank, planted = make_data(args.stored, args.bank, args.planted, args.seed)
    result: dict = {
        "benchmark": "hashes",
        "stored": args.stored,
        "bank": args.bank,
        "planted": args.planted,
        "threshold": args.threshold,
    }
    cpu_pairs = None
    versions: dict[str, str] = {}
    if not args.gpu_only:
        cpu = cpu_part(stored, bank, planted, args)
        cpu_pairs = cpu.pop("_pairs")
        versions |= cpu.pop("versions")
        result |= cpu
        print(
            f"faiss flat {cpu['faiss_flat']['comparisons_per_s'] / 1e9:.2f} G/s, matcher "
            f"{cpu['matcher']['comparisons_per_s'] / 1e9:.2f} G/s (x{cpu['matcher_vs_faiss']:.2f}), numpy "
            f"{cpu['numpy_reference']['comparisons_per_s'] / 1e9:.3f} G/s; exact: {cpu['exact']}",
            file=sys.stderr,
        )
    import torch

    if torch.cuda.is_available():
        gpu = gpu_part(stored, bank, planted, args, cpu_pairs)
        versions |= gpu.pop("versions")
        result["triton_kernel"] = gpu
    elif args.gpu_only:
        print("--gpu-only needs a CUDA GPU", file=sys.stderr)
        raise SystemExit(2)
    else:
        result["triton_kernel"] = None
    result["machine"] = machine(torch=torch.__version__, **versions)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
