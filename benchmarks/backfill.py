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
   model (target: 10xN <= 1.2x N): memory must not grow with the backlog;
4. the scheduled incremental run: k new rows appended to a backlog of 10^4 and of 10^6 old
   rows that are fully scored (synthetic metadata-only rows, scores and watermark written
   directly); its wall time (Ray already running), the backlog files and bytes it reads, and
   the time ratio (target <= 1.5; files and bytes must not depend on the old rows);
5. ``backfill --dry-run`` peak RSS of the driver (and of the largest Ray worker) on
   metadata-only backlogs of 10^6 and 5x10^6 rows (target: ratio <= 1.3);
6. commits per second of the sink (unit-sized score commits with transactions).

    python benchmarks/backfill.py [--rows 6000] [--text-rows 512] [--rss-rows 4000]
        [--old-rows 10000 1000000] [--new-rows 500] [--dry-rows 1000000 5000000] [--only NAME ...]
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


def _synthetic_backlog(uri: str, rows: int, *, start: int = 0, file_rows: int = 250_000) -> None:
    """Metadata-only backlog rows (short text, no media), written in bounded memory."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from pipelines.schema import BACKLOG

    regions = np.array(["DE", "FR", "IT", "ES", "PL", "NL", "SE", "US", "BR", "IN"])
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def batches():  # type: ignore[no-untyped-def]
        for lo in range(start, start + rows, file_rows):
            n = min(file_rows, start + rows - lo)
            idx = np.arange(lo, lo + n)
            reg = regions[idx % len(regions)]
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([f"item-{i:09d}" for i in idx], pa.string()),
                    pa.array([base + dt.timedelta(seconds=int(i)) for i in idx], BACKLOG.field("created_at").type),
                    pa.array(reg, pa.string()),
                    pa.array([[r] for r in reg], pa.list_(pa.string())),
                    pa.array(["en"] * n, pa.string()),
                    pa.array(["TEXT"] * n, pa.string()),
                    pa.array([f"post number {i}" for i in idx], pa.string()),
                    pa.nulls(n, pa.binary()),
                    pa.nulls(n, pa.list_(pa.binary())),
                ],
                schema=BACKLOG,
            )

    write_deltalake(uri, pa.RecordBatchReader.from_batches(BACKLOG, batches()), mode="append")


def _fully_scored(lake: object, rows: int) -> None:
    """Scores for every backlog row (as a backfill of the tiny model leaves them) and the watermark."""
    import datetime as dt

    import polars as pl
    from deltalake import DeltaTable, write_deltalake

    from pipelines.backfill.progress import record_finished
    from pipelines.policy import load_default_pack
    from pipelines.schema import SCORES

    uri = lake.path("backlog")  # type: ignore[attr-defined]
    pack = load_default_pack()
    now = dt.datetime.now(dt.UTC)
    files = DeltaTable(uri).get_add_actions(flatten=True)
    path = str(files.column("path")[0])
    for lo in range(0, rows, 500_000):
        n = min(500_000, rows - lo)
        items = pl.DataFrame(
            {"content_id": [f"item-{i:09d}" for i in range(lo, lo + n)], "source_row": range(lo, lo + n)}
        )
        long = items.join(pl.DataFrame({"policy_id": [p.id for p in pack.policies]}), how="cross").with_columns(
            pl.lit(0.1, pl.Float32).alias("score"), pl.lit("bench").alias("run_id"), pl.lit("tiny").alias("model_name"),
            pl.lit("1").alias("model_version"), pl.lit(0, pl.Int64).alias("source_version"),
            pl.lit(now).dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias("scored_at"),
            pl.lit("x").alias("content_sha256"), pl.lit(0, pl.Int64).alias("chunk_id"), pl.lit(path).alias("source_file"),
        )  # fmt: skip
        for f in SCORES:
            if f.name not in long.columns:
                long = long.with_columns(pl.lit(None).alias(f.name))
        write_deltalake(lake.path("scores"), long.select(SCORES.names).to_arrow().cast(SCORES), mode="append")  # type: ignore[attr-defined]
    v = DeltaTable(uri).version()
    record_finished(
        lake, source="backlog", model_version="1", policy_version=pack.policy_version, job="bench",  # type: ignore[arg-type]
        from_version=None, to_version=v, units=0, rows=rows, chunk_rows=2000, run_id="bench",
    )  # fmt: skip


def incremental(tmp: Path, old_sizes: list[int], new_rows: int) -> dict[str, float]:
    import ray

    from pipelines.backfill import BackfillConfig, run_backfill
    from pipelines.lake import open_lake
    from pipelines.model import TinyModel, register_model

    out: dict[str, float] = {"new_rows": new_rows}
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        for n in old_sizes:
            lake = open_lake(str(tmp / f"inc{n}"))
            register_model(TinyModel(), lake=lake, name="tiny", promote=True)
            _synthetic_backlog(lake.path("backlog"), n)
            _fully_scored(lake, n)
            _synthetic_backlog(lake.path("backlog"), new_rows, start=n)  # the night's new rows
            t0 = time.perf_counter()
            summary = run_backfill(BackfillConfig(lake=lake, model_uri="models:/tiny@champion"))
            out[f"incremental_seconds_{n}"] = time.perf_counter() - t0
            out[f"incremental_scored_{n}"] = summary.scored
            out[f"incremental_files_read_{n}"] = summary.files_read
            out[f"incremental_bytes_read_{n}"] = summary.bytes_read
            out[f"incremental_units_{n}"] = summary.units
    finally:
        ray.shutdown()
    lo, hi = min(old_sizes), max(old_sizes)
    out["incremental_time_ratio"] = out[f"incremental_seconds_{hi}"] / out[f"incremental_seconds_{lo}"]
    return out


def _max_ray_worker_rss() -> int:
    best = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::"):
                continue
            best = max(
                best, int((entry / "stat").read_text().rsplit(")", 1)[1].split()[21]) * os.sysconf("SC_PAGE_SIZE")
            )
        except OSError:
            continue
    return best


def dry_run_rss(tmp: Path, sizes: list[int]) -> dict[str, float]:
    import ray

    from pipelines.lake import open_lake
    from pipelines.model import TinyModel, register_model

    out: dict[str, float] = {}
    ctx = ray.init(include_dashboard=False, log_to_driver=False)
    env = {**os.environ, "RAY_ADDRESS": ctx.address_info["address"]}
    try:
        for n in sizes:
            lake = open_lake(str(tmp / f"dry{n}"))
            register_model(TinyModel(), lake=lake, name="tiny", promote=True)
            _synthetic_backlog(lake.path("backlog"), n)
            cmd = [
                sys.executable,
                "-m",
                "batchjobs",
                "backfill",
                "--lake",
                lake.root,
                "--model",
                "models:/tiny@champion",
                "--dry-run",
            ]
            start = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
            peak = worker = 0
            while proc.poll() is None:
                peak = max(peak, _tree_rss(proc.pid))
                worker = max(worker, _max_ray_worker_rss())
                time.sleep(0.1)
            text = proc.stdout.read() if proc.stdout else ""
            if proc.returncode != 0 or "units with work" not in text:
                raise SystemExit(f"dry run on {n} rows failed ({proc.returncode}): {text[-500:]}")
            out[f"dry_run_driver_rss_mib_{n}"] = peak / 2**20
            out[f"dry_run_max_worker_rss_mib_{n}"] = worker / 2**20
            out[f"dry_run_seconds_{n}"] = time.monotonic() - start
    finally:
        ray.shutdown()
    lo, hi = min(sizes), max(sizes)
    out["dry_run_rss_ratio"] = out[f"dry_run_driver_rss_mib_{hi}"] / out[f"dry_run_driver_rss_mib_{lo}"]
    return out


def sink_commits(tmp: Path, commits: int = 40, rows: int = 2000) -> dict[str, float]:
    import polars as pl

    from pipelines.lake import open_lake
    from pipelines.policy import load_default_pack
    from pipelines.scoring.commit import ChunkWriter, Lineage

    lake = open_lake(str(tmp / "sink"))
    pack = load_default_pack()
    lineage = Lineage("bench", "run", "tiny", "1", 0, pack.policy_version, "backlog")
    writer = ChunkWriter(lake, lineage, pack, since={"scores": -1})
    long = pl.DataFrame({"content_id": [f"c{i}" for i in range(rows)], "policy_id": "hate", "score": 0.5})
    long = long.with_columns(
        pl.lit(None, pl.Datetime("us", "UTC")).alias("created_at"), pl.lit("DE").alias("region"),
        pl.lit(["DE"]).alias("markets"), pl.lit("de").alias("language"), pl.lit("TEXT").alias("content_type"),
        pl.lit("x").alias("content_sha256"),
    )  # fmt: skip
    writer.scores(long.with_columns(pl.lit(0, pl.Int64).alias("chunk_id")), 0)  # creates the table
    t0 = time.perf_counter()
    for unit in range(1, commits + 1):
        part = long.with_columns(pl.col("content_id") + f"-{unit}", pl.lit(unit, pl.Int64).alias("chunk_id"))
        writer.scores(part, unit)
    secs = time.perf_counter() - t0
    return {"sink_commits_per_s": commits / secs, "sink_rows_per_commit": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=6000, help="rows for Ray vs bare with the starter model")
    ap.add_argument("--text-rows", type=int, default=512, help="text rows for scorer vs naive")
    ap.add_argument("--rss-rows", type=int, default=4000, help="N for peak RSS at N and 10N (tiny model)")
    ap.add_argument("--old-rows", type=int, nargs=2, default=[10_000, 1_000_000], help="old backlog sizes")
    ap.add_argument("--new-rows", type=int, default=500, help="rows appended before the incremental run")
    ap.add_argument("--dry-rows", type=int, nargs=2, default=[1_000_000, 5_000_000], help="dry-run backlog sizes")
    parts = ("scorer", "ray", "rss", "incremental", "dry_run", "sink")
    ap.add_argument("--only", nargs="+", choices=parts, default=list(parts), help="run only these parts")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        result: dict[str, object] = {"benchmark": "backfill", "parts": args.only}
        if "scorer" in args.only:
            result.update(scorer_vs_naive(tmp, args.text_rows))
        if "ray" in args.only:
            result.update(ray_vs_bare(tmp, args.rows))
        if "rss" in args.only:
            result.update(rss(tmp, args.rss_rows))
        if "incremental" in args.only:
            result.update(incremental(tmp, args.old_rows, args.new_rows))
        if "dry_run" in args.only:
            result.update(dry_run_rss(tmp, args.dry_rows))
        if "sink" in args.only:
            result.update(sink_commits(tmp))
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
