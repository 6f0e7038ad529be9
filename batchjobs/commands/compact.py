"""batchjobs compact: rewrite the small files of scores, decisions and dead letters (OPTIMIZE)."""

from __future__ import annotations

import argparse

from batchjobs.commands._common import add_lake, lake_from_args
from pipelines.compact import COMPACTED, compact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compact", help="compact the small files unit commits leave (time travel and exactly-once kept)")
    add_lake(p)
    p.add_argument("--table", action="append", choices=COMPACTED, help="only this table (repeatable; default: all)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="rewrite ordered by content_id (Z-order), so sweeps and audits read each id range from its own "
        "files without a shuffle; for lakes whose ids are random (UUIDs)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    lake = lake_from_args(args, create=False)
    for c in compact(lake, tuple(args.table or COMPACTED), cluster=args.cluster):
        what = f"v{c.version}" if c.version is not None else "nothing to do"
        print(f"compact {c.table}: {c.files_before} -> {c.files_after} files ({what})")
    return 0
