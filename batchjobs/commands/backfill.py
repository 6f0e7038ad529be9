"""batchjobs backfill: score what is new in the backlog and commit scores and decisions."""

from __future__ import annotations

import argparse
import os

from batchjobs.commands._common import add_lake, lake_from_args, positive_int, timestamp
from pipelines.backfill import DEFAULT_MODEL_URI, BackfillConfig, run_backfill


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backfill", help="score the backlog (incremental, exactly once) into scores and decisions")
    add_lake(p)
    p.add_argument("--backlog", help="backlog Delta table URI (default: LAKE/backlog)")
    p.add_argument("--model", default=DEFAULT_MODEL_URI, help=f"model URI or folder (default: {DEFAULT_MODEL_URI})")
    p.add_argument("--policy", default="default", help="policy pack file or bundled name (default: default)")
    p.add_argument("--since", type=timestamp, help="only content created at or after this time (UTC)")
    p.add_argument("--until", type=timestamp, help="only content created before this time (UTC)")
    p.add_argument(
        "--limit",
        type=positive_int,
        help="at most N rows of this run's new work, in (table version, created_at, content_id) order",
    )
    p.add_argument(
        "--chunk-rows", type=positive_int, default=2000, help="rows per unit, the exactly-once commit (default 2000)"
    )
    p.add_argument("--batch-rows", type=positive_int, default=256, help="rows per scoring call (default 256)")
    p.add_argument(
        "--scorers",
        type=positive_int,
        help="scoring actors (default: one per GPU; on CPUs one 1-thread actor per CPU below 16 CPUs, 4-thread actors on big nodes)",
    )
    p.add_argument("--retry-dead-letters", action="store_true", help="score rows an earlier run dead-lettered")
    p.add_argument("--dry-run", action="store_true", help="plan and print what a run would do; write nothing")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"), help="existing Ray cluster (default: local)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = BackfillConfig(
        lake=lake_from_args(args, tracking=True),
        backlog=args.backlog,
        model_uri=args.model,
        policy=args.policy,
        since=args.since,
        until=args.until,
        limit=args.limit,
        chunk_rows=args.chunk_rows,
        batch_rows=args.batch_rows,
        retry_dead_letters=args.retry_dead_letters,
        num_scorers=args.scorers,
        dry_run=args.dry_run,
    )
    summary = run_backfill(config, ray_address=args.ray_address)
    if config.dry_run:
        for line in summary.plan_lines:
            print(f"dry run: {line}")
        print("dry run: nothing was written")
        return 0
    print(summary.line())
    print(f"scores:       {config.lake.path('scores')}")
    print(f"decisions:    {config.lake.path('decisions')}")
    print(f"dead letters: {config.lake.path('dead_letters')}")
    print(f"mlflow:       {config.lake.mlflow_uri} (run {summary.run_id})")
    return 0
