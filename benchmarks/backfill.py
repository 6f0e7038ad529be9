"""Backfill throughput, batching efficiency and memory: prints one JSON line last.

Measured in one run on one machine:
1. rows/s of the Ray pipeline (``run_backfill``) and of a bare single-process loop over the
   same rows with the same model and batch size; their ratio (target on 2 CPUs: >= 0.9).
   The Ray side pays a fixed start-up the bare loop does not (worker processes, one model
   load per scoring actor: about 20 s on 2 cores) and then scores faster (two 1-thread
   actors vs one 2-thread loop); the default N (6,000 rows, about 5 minutes for this part)
   amortises the start-up as a backfill of a real backlog does;
2. rows/s of the starter model's scorer (length-sorted, token-budget micro-batches) against
   a naive loop that batches in arrival order and pads to the batch maximum, on text with
   heavy-tailed lengths; their ratio (target >= 4) and the padding share of tokens (<= 15%);
3. peak RSS of the whole job (driver + Ray workers, sampled) at N and 10xN rows with the tiny
   model (target: 10xN <= 1.2x N): memory must not grow with the backlog.

    python benchmarks/backfill.py [--rows 6000] [--text-rows 512] [--rss-rows 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine  # benchmarks/ is on sys.path when run as a script

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` and all its descendants (Linux /proc)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat[1])
        rss[int(entry.name)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    total, frontier, seen = rss.get(pid, 0), [pid], {pid}
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in seen:
                seen.add(child)
                total += rss.get(child, 0)
                frontier.append(child)
    return total


def _peak_rss_of(cmd: list[str]) -> tuple[int, float]:
    """Run ``cmd``; sample its process tree's RSS every 0.2 s; return (peak bytes, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return peak, time.monotonic() - start


def _lake(root: Path, rows: int, seed: int = 3) -> object:
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake

    lake = open_lake(str(root))
    generate_backlog(lake, GenerateConfig(rows=rows, seed=seed))
    return lake


def _rows(lake: object, limit: int) -> dict[str, list[object]]:
    import polars as pl

    from pipelines.model.interface import INPUT_COLUMNS

    df = pl.read_delta(lake.path("backlog")).head(limit)  # type: ignore[attr-defined]
    return {c: df[c].to_list() for c in INPUT_COLUMNS}


def ray_vs_bare(tmp: Path, rows: int) -> dict[str, float]:
    import numpy as np
    import torch

    from pipelines.backfill import BackfillConfig, run_backfill
    from pipelines.model import StarterModel, register_model

    lake = _lake(tmp / "ray", rows)
    model = StarterModel.build()
    register_model(model, lake=lake, name="starter", promote=True)  # type: ignore[arg-type]
    batch = 256

    # Bare: one process, same model (loaded from the registry, as the actors do), same
    # preprocessing and scoring batch sizes, all cores.
    import ray

    from pipelines.model import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    cols = _rows(lake, rows)
    t0 = time.perf_counter()
    model = load_model("models:/starter@champion", lake=lake)  # type: ignore[arg-type]
    pre = model.preprocessor()
    scored = 0
    for s in range(0, rows, batch):
        part = {k: v[s : s + batch] for k, v in cols.items()}
        prepared = pre(part)
        out = model.score(prepared)
        scored += int(np.isfinite(out).all(axis=1).sum())
    bare = scored / (time.perf_counter() - t0)

    # A backfill joins a running cluster in production: start Ray outside the timed part.
    ray.init(include_dashboard=False, log_to_driver=False)
    t0 = time.perf_counter()
    summary = run_backfill(BackfillConfig(lake=lake, model_uri="models:/starter@champion", batch_rows=batch))  # type: ignore[arg-type]
    ray_rows = summary.scored / (time.perf_counter() - t0)
    ray.shutdown()
    return {"rows": rows, "ray_rows_per_s": ray_rows, "bare_rows_per_s": bare, "ray_over_bare": ray_rows / bare}


def scorer_vs_naive(tmp: Path, rows: int) -> dict[str, float]:
    import polars as pl
    import torch

    import pipelines.model.starter as starter
    from pipelines.model import StarterModel
    from pipelines.model.batching import PaddingStats
    from pipelines.model.interface import INPUT_COLUMNS

    lake = _lake(tmp / "text", rows * 3, seed=5)
    df = pl.read_delta(lake.path("backlog")).filter(pl.col("content_type") == "TEXT").head(rows)  # type: ignore[attr-defined]
    cols = {c: df[c].to_list() for c in INPUT_COLUMNS}
    torch.set_num_threads(os.cpu_count() or 1)
    model = StarterModel.build()
    prepared = model.preprocessor()(cols)
    lengths = [sum(w) for w in prepared.columns["window_lens"]]

    def parts() -> list[object]:
        out = []
        for s in range(0, len(prepared), 256):  # what one scoring actor call gets
            idx = list(range(s, min(s + 256, len(prepared))))
            out.append(
                type(prepared)(
                    index=list(range(len(idx))),
                    columns={k: [v[i] for i in idx] for k, v in prepared.columns.items()},
                    n_tokens=[prepared.n_tokens[i] for i in idx],
                )
            )
        return out

    batches = parts()

    def timed() -> float:
        model.score(batches[0])  # warm-up: first calls pay for lazy initialisation
        model.padding = PaddingStats()
        t0 = time.perf_counter()
        for part in batches:
            model.score(part)
        return len(prepared) / (time.perf_counter() - t0)

    sorted_rps = timed()
    sorted_pad = model.padding.padding_share
    original = starter.pack_by_tokens

    def arrival_order(lengths: list[int], **_: object) -> list[list[int]]:
        return [list(range(i, min(i + 64, len(lengths)))) for i in range(0, len(lengths), 64)]

    starter.pack_by_tokens = arrival_order  # type: ignore[assignment]
    try:
        naive_rps = timed()
    finally:
        starter.pack_by_tokens = original
    return {
        "text_rows": len(prepared),
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "scorer_rows_per_s": sorted_rps,
        "naive_rows_per_s": naive_rps,
        "scorer_over_naive": sorted_rps / naive_rps,
        "scorer_padding_share": sorted_pad,
        "naive_padding_share": model.padding.padding_share,
    }


def rss(tmp: Path, rows: int) -> dict[str, float]:
    from pipelines.lake import open_lake
    from pipelines.model import TinyModel, register_model

    out: dict[str, float] = {}
    for n in (rows, rows * 10):
        lake = _lake(tmp / f"rss{n}", n, seed=9)
        register_model(TinyModel(), lake=open_lake(lake.root), name="tiny", promote=True)  # type: ignore[attr-defined]
        cmd = [sys.executable, "-m", "batchjobs", "backfill", "--lake", lake.root, "--model", "models:/tiny@champion"]  # type: ignore[attr-defined]
        peak, secs = _peak_rss_of(cmd)
        out[f"peak_rss_mib_{n}"] = peak / 2**20
        out[f"seconds_{n}"] = secs
    out["rss_ratio_10x"] = out[f"peak_rss_mib_{rows * 10}"] / out[f"peak_rss_mib_{rows}"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=6000, help="rows for Ray vs bare with the starter model")
    ap.add_argument("--text-rows", type=int, default=512, help="text rows for scorer vs naive")
    ap.add_argument("--rss-rows", type=int, default=4000, help="N for peak RSS at N and 10N (tiny model)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        result: dict[str, object] = {"benchmark": "backfill"}
        result.update(scorer_vs_naive(tmp, args.text_rows))
        result.update(ray_vs_bare(tmp, args.rows))
        result.update(rss(tmp, args.rss_rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import torch

    result["machine"] = machine(torch=torch.__version__)
    sys.stdout.flush()
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
