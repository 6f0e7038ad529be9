"""batchjobs demo: the whole system end to end on a local lake, in minutes on 2 CPU cores.

generate → train the starter model → backfill → sweep with the election pack → (audit),
then print where every table, the MLflow store and the reports are. Re-running on the same
lake reuses what is there (the backfill is incremental), so it is safe to run twice.
"""

from __future__ import annotations

import argparse
import sys
import time

from batchjobs.commands._common import lake_from_args, positive_int
from pipelines.heads import DEFAULT_HEADS
from pipelines.lake import TRACKING_URI_ENV, Lake, table_exists


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate, train, backfill, sweep and audit a demo lake end to end")
    p.add_argument("--lake", default="demo-lake", help="lake folder or s3://bucket/prefix (default: ./demo-lake)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help=f"MLflow tracking URI (default: LAKE/mlflow.db; ${TRACKING_URI_ENV}, required, for an s3:// lake)",
    )
    p.add_argument(
        "--rows",
        type=positive_int,
        default=2500,
        help="backlog rows to generate (default 2500: about 6 minutes on 2 cores)",
    )
    p.add_argument("--bad-rows", type=int, default=25, help="malformed rows to add (default 25)")
    p.add_argument("--enrich", type=float, default=4.0, help="prevalence multiplier (default 4)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--epochs", type=positive_int, default=6, help="starter model training epochs (default 6)")
    p.add_argument("--per-stratum", type=positive_int, default=40, help="review sample per stratum (default 40)")
    p.add_argument("--model", default=None, help="score with this model URI instead of training the starter model")
    p.set_defaults(run=run)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.monotonic()


def _done(t0: float) -> None:
    print(f"   ({time.monotonic() - t0:.0f}s)", flush=True)


def _generate(lake: Lake, args: argparse.Namespace) -> None:
    from pipelines.generate import GenerateConfig, generate_backlog

    t0 = _step(f"generate {args.rows} rows (+{args.bad_rows} malformed, prevalence x{args.enrich:g})")
    if table_exists(lake.path("backlog")):
        print(f"   {lake.path('backlog')} exists: reusing it")
    else:
        s = generate_backlog(
            lake, GenerateConfig(rows=args.rows, seed=args.seed, bad_rows=args.bad_rows, enrich=args.enrich)
        )
        print(f"   {s.rows} rows + {s.bad_rows} malformed; positives: {s.positives}")
    _done(t0)


def _train(lake: Lake, args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    from pipelines.model.train import TrainConfig, train_starter

    t0 = _step(
        "train the starter model (frozen multilingual e5 + USE text towers and EfficientNet-Lite0, fusion + heads)"
    )
    s = train_starter(lake, TrainConfig(epochs=args.epochs), progress=lambda m: print(f"   {m}", flush=True))
    aucs = {h: round(s.metrics[f"auc_{h}"], 3) for h in DEFAULT_HEADS if f"auc_{h}" in s.metrics}
    print(f"   registered {s.model_name} version {s.version} (champion); held-out ROC AUC: {aucs}")
    _done(t0)
    return f"models:/{s.model_name}@champion"


def _backfill(lake: Lake, model_uri: str) -> None:
    from pipelines.backfill import BackfillConfig, run_backfill

    t0 = _step(f"backfill with {model_uri} and the default policy pack (local Ray)")
    summary = run_backfill(BackfillConfig(lake=lake, model_uri=model_uri, chunk_rows=1000))
    print(f"   {summary.line()}")
    _done(t0)


def _sweep(lake: Lake) -> str | None:
    from pipelines.errors import BadInputError
    from pipelines.sweep import SweepConfig, run_sweep

    t0 = _step("sweep with the election-eu pack (stricter EU misinformation thresholds), no re-scoring")
    try:
        result = run_sweep(SweepConfig(lake=lake, policy="election-eu"))
    except BadInputError as exc:  # already swept on an earlier demo run
        print(f"   {exc}")
        return None
    print(f"   {result.line()}")
    _done(t0)
    return f"{result.report_dir}/index.html" if result.report_dir else None


def _audit(lake: Lake, args: argparse.Namespace) -> str | None:
    from pipelines.audit import AuditConfig, SampleConfig, ingest_labels_from_ground_truth, run_audit, sample_for_review

    t0 = _step("review sample (stratified, with inclusion probabilities), labels from ground truth, audit")
    sample = sample_for_review(SampleConfig(lake=lake, per_stratum=args.per_stratum, seed=args.seed))
    print(f"   {sample.line()}")
    labels = ingest_labels_from_ground_truth(lake)
    print(f"   {labels.line()}")
    result = run_audit(AuditConfig(lake=lake))
    print(f"   {result.line()}")
    _done(t0)
    return result.index_html


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    lake = lake_from_args(args, tracking=True)
    _generate(lake, args)
    model_uri = _train(lake, args)
    _backfill(lake, model_uri)
    sweep_report = _sweep(lake)
    audit_report = _audit(lake, args)
    print(f"\n== done in {time.monotonic() - started:.0f}s. Everything is under {lake.root}:")
    for table in ("backlog", "ground_truth", "scores", "decisions", "dead_letters", "policy_packs"):
        print(f"   {table + ':':14} {lake.path(table)}")
    print(f"   {'mlflow:':14} {lake.mlflow_uri} (artifacts {lake.artifacts_uri})")
    if sweep_report:
        print(f"   {'sweep report:':14} {sweep_report}")
    if audit_report:
        print(f"   {'audit report:':14} {audit_report}")
    sys.stdout.flush()
    return 0
