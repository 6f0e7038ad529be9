"""batchjobs sweep: re-decide stored scores under a new policy pack, without re-scoring."""

from __future__ import annotations

import argparse

import polars as pl

from batchjobs.commands._common import (
    add_lake,
    add_ray_address,
    lake_from_args,
    positive_int,
    require,
    timestamp,
    use_ray_address,
)
from pipelines.sweep import SweepConfig, run_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="re-decide the backlog under a new policy pack from stored scores (no GPU)")
    add_lake(p)
    add_ray_address(p)
    p.add_argument("--policy", help="the new policy pack (file or bundled name, e.g. election-eu)")
    p.add_argument(
        "--hashes",
        metavar="BANK",
        help="instead: match the bank's new entries against every stored media hash (no media, no model); "
        "--policy then names the pack whose bindings apply (default: the lake's latest pack)",
    )
    p.add_argument("--since", type=timestamp, help="only content created at or after this time (UTC)")
    p.add_argument("--until", type=timestamp, help="only content created before this time (UTC)")
    p.add_argument("--market", action="append", default=[], help="only this market or group (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and transition counts; write nothing")
    p.add_argument("--out", help="report folder (default: LAKE/reports/sweep-OLD-NEW)")
    p.add_argument(
        "--chunk-rows", type=positive_int, default=1_000_000, help="score rows per commit at most (default 1000000)"
    )
    p.set_defaults(run=run)


def _print_counts(summary: pl.DataFrame) -> None:
    groups = summary.filter(pl.col("scope_kind") == "group").sort("scope", "policy_id")
    cols = ("scope", "policy_id", "items", "cleared_to_actioned", "actioned_to_cleared", "newly_restricted", "restored")
    print("  ".join(f"{c:>20}" for c in cols))
    for row in groups.select(cols).rows():
        print("  ".join(f"{v!s:>20}" for v in row))


def run_hashes(args: argparse.Namespace) -> int:
    from pipelines.hashes.rematch import RematchConfig, rematch_bank

    require(not args.dry_run, "--dry-run is not available with --hashes")
    result = rematch_bank(RematchConfig(lake=lake_from_args(args, create=False), bank=args.hashes, policy=args.policy))
    print(result.line())
    if result.newly.height:
        print(f"{'market':>8}  {'policy_id':<20} {'action':<8} {'newly matched items':>20}")
        for market, policy_id, action, items in result.newly.select("market", "policy_id", "action", "items").rows():
            print(f"{market:>8}  {policy_id:<20} {action:<8} {items:>20}")
    else:
        print("no newly matched items")
    print(f"report:       {result.report}")
    return 0


def run(args: argparse.Namespace) -> int:
    use_ray_address(args)
    if args.hashes is not None:
        return run_hashes(args)
    require(args.policy is not None, "--policy is required (or --hashes BANK to re-match a hash bank)")
    config = SweepConfig(
        lake=lake_from_args(args, create=False, tracking=True),
        policy=args.policy,
        since=args.since,
        until=args.until,
        markets=tuple(args.market),
        dry_run=args.dry_run,
        out=args.out,
        chunk_rows=args.chunk_rows,
    )
    result = run_sweep(config)
    print(result.plan.describe())
    _print_counts(result.summary)
    print(result.line())
    if result.report_dir:
        print(f"report:       {result.report_dir}/index.html")
        print(f"decisions:    {config.lake.path('decisions')}")
        print(f"mlflow:       {config.lake.mlflow_uri} (run {result.run_id})")
    return 0
