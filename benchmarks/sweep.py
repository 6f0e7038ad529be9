"""Re-decision from stored scores vs re-scoring: prints one JSON line last.

Measured in one run: re-scoring items/s (the starter model's preprocess + score on a sample
of generated rows, all cores) and re-decision items/s (``run_sweep`` with the election pack
over a lake holding >= 1 million stored score rows, commits included). Target on 2 CPUs:
re-decision >= 1000x faster per item (and per score row).

    python benchmarks/sweep.py [--items 150000] [--rescore-rows 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _machine import machine  # benchmarks/ is on sys.path when run as a script

os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _stored_lake(root: Path, items: int) -> tuple[object, int]:
    """A lake with `items` x 7 score rows and their decisions under the default pack."""
    import numpy as np
    import polars as pl

    from pipelines.lake import open_lake
    from pipelines.markets import ALL_MARKETS
    from pipelines.policy import load_default_pack, record_pack
    from pipelines.scoring.commit import ChunkWriter, Lineage, scores_long
    from pipelines.tracking import experiment_id

    lake = open_lake(str(root))
    pack = load_default_pack()
    rng = np.random.default_rng(0)
    regions = rng.choice(np.array(ALL_MARKETS), items)
    heads = pack.heads
    rows = pl.DataFrame(
        {
            "content_id": [f"c{i:09d}" for i in range(items)],
            # Low-prevalence-like scores: mostly near 0, a tail towards 1.
            "head_scores": rng.beta(0.4, 4.0, (items, len(heads))).astype(np.float32).tolist(),
            "created_at": [datetime(2026, 3, 1, tzinfo=UTC)] * items,
            "region": regions.tolist(),
            "markets": [[r] for r in regions.tolist()],
            "language": ["en"] * items,
            "content_type": ["TEXT"] * items,
            "content_sha256": ["0" * 64] * items,
            "chunk_id": [0] * items,
        }
    )
    lineage = Lineage("bench", "bench-run", "starter", "1", 0, pack.policy_version, "synthetic")
    record_pack(lake, pack, run_id="bench-run")
    # A real lake has its MLflow store from the backfill; create it here, outside the timing.
    experiment_id(lake)
    writer = ChunkWriter(lake, lineage, pack)
    long = scores_long(rows, heads, pack)
    writer.scores(long, 0)
    writer.decisions(long, 0)
    return lake, long.height


def redecide(tmp: Path, items: int) -> dict[str, float]:
    from pipelines.sweep import SweepConfig, run_sweep

    lake, score_rows = _stored_lake(tmp / "sweep", items)
    t0 = time.perf_counter()
    result = run_sweep(SweepConfig(lake=lake, policy="election-eu"))  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    return {
        "stored_score_rows": score_rows,
        "redecided_score_rows": result.plan.score_rows,
        "decision_rows_written": result.decisions_written,
        "sweep_seconds": secs,
        "redecision_items_per_s": items / secs,
        "redecision_score_rows_per_s": score_rows / secs,
    }


def rescore(tmp: Path, rows: int) -> dict[str, float]:
    import polars as pl
    import torch

    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake
    from pipelines.model import StarterModel
    from pipelines.model.interface import INPUT_COLUMNS

    lake = open_lake(str(tmp / "rescore"))
    generate_backlog(lake, GenerateConfig(rows=rows, seed=1))
    df = pl.read_delta(lake.path("backlog"))
    cols = {c: df[c].to_list() for c in INPUT_COLUMNS}
    torch.set_num_threads(os.cpu_count() or 1)
    model = StarterModel.build()
    pre = model.preprocessor()
    model.score(pre({k: v[:16] for k, v in cols.items()}))  # warm-up outside the timing
    t0 = time.perf_counter()
    for s in range(0, rows, 256):
        model.score(pre({k: v[s : s + 256] for k, v in cols.items()}))
    secs = time.perf_counter() - t0
    n_policies = 7
    return {
        "rescore_items": rows,
        "rescore_seconds": secs,
        "rescore_items_per_s": rows / secs,
        "rescore_score_rows_per_s": rows * n_policies / secs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=150_000, help="items in the stored lake (x7 score rows)")
    ap.add_argument("--rescore-rows", type=int, default=1000, help="rows the starter model re-scores")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        result: dict[str, object] = {"benchmark": "sweep"}
        result.update(rescore(tmp, args.rescore_rows))
        result.update(redecide(tmp, args.items))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["redecision_over_rescoring_per_item"] = result["redecision_items_per_s"] / result["rescore_items_per_s"]  # type: ignore[operator]
    result["redecision_over_rescoring_per_score_row"] = (
        result["redecision_score_rows_per_s"] / result["rescore_score_rows_per_s"]  # type: ignore[operator]
    )
    import polars as pl
    import torch

    result["machine"] = machine(torch=torch.__version__, polars=pl.__version__)
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
