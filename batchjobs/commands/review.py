"""batchjobs review: draw stratified review samples and load the reviewers' labels."""

from __future__ import annotations

import argparse

from batchjobs.commands._common import (
    add_lake,
    add_ray_address,
    lake_from_args,
    positive_int,
    timestamp,
    use_ray_address,
)
from pipelines.audit import SampleConfig, ingest_labels_csv, ingest_labels_from_ground_truth, sample_for_review
from pipelines.errors import BadConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="stratified human-review samples and their labels (for audit accuracy)")
    inner = p.add_subparsers(dest="review_command", metavar="ACTION", parser_class=type(p))
    inner.required = True

    s = inner.add_parser("sample", help="draw a stratified sample into review_samples")
    add_lake(s)
    add_ray_address(s)
    s.add_argument("--per-stratum", type=positive_int, required=True, help="units per stratum (high scores get more)")
    s.add_argument("--seed", type=int, default=0, help="draw seed (default 0)")
    s.add_argument("--oversample", type=positive_int, default=2, help="allocation factor of high/changed strata")
    s.add_argument("--policy", action="append", default=[], help="only these policy ids (repeatable)")
    s.add_argument("--as-of", dest="as_of", type=timestamp, help="pin the decisions table as of this time")
    s.set_defaults(run=run_sample)

    i = inner.add_parser("ingest", help="load labels (CSV: sample_id,label[,reviewer]) into review_labels")
    add_lake(i)
    i.add_argument("file", nargs="?", help="labels CSV")
    i.add_argument("--from-ground-truth", action="store_true", help="label samples from ground_truth (generated data)")
    i.add_argument(
        "--as-decisions",
        action="store_true",
        help="also write the labels as decisions of record (source human_review; docs/transparency.md)",
    )
    i.set_defaults(run=run_ingest)


def run_sample(args: argparse.Namespace) -> int:
    use_ray_address(args)
    config = SampleConfig(
        lake=lake_from_args(args, create=False),
        per_stratum=args.per_stratum,
        seed=args.seed,
        oversample=args.oversample,
        as_of=args.as_of,
        policies=tuple(args.policy),
    )
    print(sample_for_review(config).line())
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    lake = lake_from_args(args, create=False)
    if args.from_ground_truth == bool(args.file):
        raise BadConfigError("give either a labels CSV file or --from-ground-truth (not both, not neither)")
    summary = ingest_labels_from_ground_truth(lake) if args.from_ground_truth else ingest_labels_csv(lake, args.file)
    print(summary.line())
    if args.as_decisions:
        from pipelines.audit.record import record_review_decisions

        print(record_review_decisions(lake).line())
    return 0
