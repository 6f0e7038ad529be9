"""batchjobs transparency-report: the Annex I CSVs of Implementing Regulation (EU) 2024/2835 for a period."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from batchjobs.commands._common import add_lake, lake_from_args, timestamp
from pipelines.storage import staged_dir
from pipelines.transparency import Period, write_transparency_report


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transparency-report", help="DSA transparency report (Annex I CSVs) from the lake")
    add_lake(p)
    p.add_argument("--period", required=True, help="FIRST/LAST day, both inclusive (e.g. 2026-01-01/2026-06-30)")
    p.add_argument("--service", default="", help="name of the service (the templates' Service column)")
    p.add_argument("--provider", help="statutory name of the provider (Part 1)")
    p.add_argument("--published", type=_date, help="publication date of the report (Part 1)")
    p.add_argument("--vlop", action="store_true", help="very large online platform: fill the per-language rows")
    p.add_argument("--as-of", dest="as_of", type=timestamp, help="pin every table as of this time (default now)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # An s3:// --out is written to a local folder first and uploaded when the report is complete.
    with staged_dir(args.out) as folder:
        written = write_transparency_report(
            lake_from_args(args, create=False),
            Period.parse(args.period),
            service=args.service,
            provider=args.provider,
            published=args.published,
            vlop=args.vlop,
            out=str(folder),
            as_of=args.as_of,
        )
    paths = {k: f"{args.out.rstrip('/')}/{Path(v).name}" for k, v in written.items()}
    print(f"transparency-report: {len(paths) - 1} parts for {args.period} -> {args.out}")
    for path in paths.values():
        print(path)
    return 0
