"""``batchjobs generate``: write a synthetic multimodal backlog and its true labels to a lake."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from batchjobs.commands._common import add_lake, lake_from_args
from pipelines.generate import GenerateConfig, generate_backlog

PROGRESS_MIN_ROWS = 20_000  # smaller runs finish in a few seconds: no progress lines
PROGRESS_EVERY_S = 2.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("generate", help="generate a synthetic backlog with ground truth into a lake")
    add_lake(p, help="lake root (a folder or s3://bucket/prefix); must not already hold a backlog")
    p.add_argument("--rows", type=int, required=True, help="number of good rows (1 to 100,000,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same rows (default 0)")
    p.add_argument("--bad-rows", type=int, default=0, help="malformed rows to add, all kinds in turn (default 0)")
    p.add_argument("--enrich", type=float, default=1.0, help="multiply each policy's prevalence (>= 1, capped at 30%%)")
    p.add_argument(
        "--known",
        type=int,
        default=0,
        help="known images per default bank: their near copies go into the backlog, the bank CSVs under known_banks/ (default 0)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = GenerateConfig(
        rows=args.rows, seed=args.seed, bad_rows=args.bad_rows, enrich=args.enrich, known=args.known
    )
    lake = lake_from_args(args)
    total = config.rows + config.bad_rows

    last = [0.0]

    def progress(done: int, of: int) -> None:
        # At most one line every PROGRESS_EVERY_S seconds (and the last one): 10M rows are
        # 2,000 batches, which should not mean 2,000 lines.
        now = time.monotonic()
        if done == of or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            print(f"generate: {done:,}/{of:,} rows written", file=sys.stderr, flush=True)

    summary = generate_backlog(lake, config, progress=progress if total >= PROGRESS_MIN_ROWS else None)
    prevalence = summary.prevalence()
    rows, bad = f"{summary.rows:,}", f"{summary.bad_rows:,}"
    print(f"generated {rows} rows + {bad} bad rows in {summary.seconds:.1f} s (seed {config.seed})")
    print("positives: " + ", ".join(f"{k}={v} ({prevalence[k]:.2%})" for k, v in summary.positives.items()))
    if summary.bad_rows:
        print("bad rows: " + ", ".join(f"{k}={v}" for k, v in summary.bad_row_kinds.items() if v))
    print(f"held-out rows: {summary.heldout_rows:,}")
    print(f"backlog: {summary.backlog_uri} (version {summary.backlog_version})")
    print(f"ground_truth: {summary.ground_truth_uri}")
    for bank, path in summary.known_banks.items():
        print(f"known bank {bank}: {path} (import with: batchjobs hashes import --lake LAKE --bank {bank} {path})")
    return 0
