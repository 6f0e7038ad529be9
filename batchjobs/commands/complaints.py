"""batchjobs complaints: load internal complaints (DSA Art. 20) and their decisions of record; generate a demo file."""

from __future__ import annotations

import argparse

from batchjobs.commands._common import add_lake, lake_from_args
from pipelines.complaints import generate_complaints, ingest_complaints


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("complaints", help="internal complaints: ingest a file, or generate one for a lake")
    inner = p.add_subparsers(dest="complaints_command", metavar="ACTION", parser_class=type(p))
    inner.required = True

    i = inner.add_parser("ingest", help="validate and load a complaints CSV/Parquet (exactly once per file content)")
    add_lake(i)
    i.add_argument("file", help="complaints file (.csv or .parquet)")
    i.set_defaults(run=run_ingest)

    g = inner.add_parser("generate", help="write a realistic complaints file for the lake's decisions")
    add_lake(g)
    g.add_argument("--out", required=True, help="file to write (.csv, or .parquet)")
    g.add_argument("--share", type=float, default=0.1, help="share of restrictive decisions appealed (default 0.1)")
    g.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    g.set_defaults(run=run_generate)


def run_ingest(args: argparse.Namespace) -> int:
    print(ingest_complaints(lake_from_args(args, create=False), args.file).line())
    return 0


def run_generate(args: argparse.Namespace) -> int:
    lake = lake_from_args(args, create=False)
    print(generate_complaints(lake, args.out, appeal_share=args.share, seed=args.seed).line())
    return 0
