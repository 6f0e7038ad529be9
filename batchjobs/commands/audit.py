"""batchjobs audit: the per-region × policy compliance report of a period, pinned to table versions."""

from __future__ import annotations

import argparse

from batchjobs.commands._common import add_lake, add_ray_address, lake_from_args, timestamp, use_ray_address
from pipelines.audit import AuditConfig, run_audit
from pipelines.audit.config import BREAKDOWNS
from pipelines.errors import BadInputError
from pipelines.lake import table_exists


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="compliance report per region × policy (Parquet, JSON, HTML, DSA statements of reasons)"
    )
    add_lake(p)
    add_ray_address(p)
    p.add_argument("--out", help="output folder (default: LAKE/reports/audit-<from>-<to>/)")
    p.add_argument("--from", dest="start", type=timestamp, help="period start, by decided_at (UTC, inclusive)")
    p.add_argument(
        "--to", dest="end", type=timestamp, help="period end, by decided_at (UTC, exclusive; default: --as-of)"
    )
    p.add_argument(
        "--market", action="append", default=[], help="market code or group (EU, EEA, GLOBAL); repeat or comma-separate"
    )
    p.add_argument("--policy", action="append", default=[], help="policy id; repeat or comma-separate (default: all)")
    p.add_argument("--as-of", dest="as_of", type=timestamp, help="pin every table at its version as of this time")
    p.add_argument("--by", default="", help=f"extra breakdowns, comma-separated: {', '.join(BREAKDOWNS)}")
    p.add_argument("--backlog", help="backlog table URI for dead-letter markets (default: LAKE/backlog)")
    p.add_argument("--no-html", action="store_true", help="skip index.html")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    use_ray_address(args)
    lake = lake_from_args(args, create=False)
    if not table_exists(lake.path("decisions")):
        raise BadInputError(f"no decisions table at {lake.path('decisions')}: run `batchjobs backfill` first")
    config = AuditConfig(
        lake=lake,
        out=args.out,
        start=args.start,
        end=args.end,
        markets=tuple(n for v in args.market for n in _names(v)),
        policies=tuple(n for v in args.policy for n in _names(v)),
        as_of=args.as_of,
        by=tuple(_names(args.by)),
        backlog=args.backlog,
    )
    result = run_audit(config, html=not args.no_html)
    print(result.line())
    for path in (result.report_parquet, result.report_json, result.index_html, result.statements):
        if path:
            print(path)
    return 0
