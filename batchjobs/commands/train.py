"""``batchjobs train``: train the starter model on a lake's labels, evaluate, register in MLflow."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from batchjobs.commands._common import add_lake, lake_from_args, positive_int


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train the starter model, evaluate it on held-out data, register it")
    add_lake(p, help="lake root: a folder or s3://bucket/prefix (backlog, labels, model artifacts)")
    p.add_argument("--model-name", default="starter", help="registered model name (default starter)")
    p.add_argument(
        "--labels",
        choices=("ground_truth", "review"),
        default="ground_truth",
        help="train on generated ground truth (train/heldout splits) or on human review labels",
    )
    p.add_argument("--no-promote", action="store_true", help="register the new version without moving 'champion'")
    p.add_argument("--epochs", type=positive_int, default=6, help="fusion training epochs (default 6)")
    p.add_argument("--max-rows", type=positive_int, default=None, help="cap on training rows (default: all)")
    p.add_argument("--max-heldout-rows", type=positive_int, default=None, help="cap on evaluation rows (default: all)")
    p.add_argument(
        "--text-tower",
        default=None,
        help="e5+use (default: multilingual-e5-small + a USE-multilingual sentence vector), e5, minilm "
        "(English only), or a BERT / XLM-R folder (FOLDER+use adds the sentence vector)",
    )
    p.add_argument("--feature-cache", default=None, help="folder keeping frozen-tower outputs between runs")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1: see docs/models.md)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fusion initialisation and shuffling")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.model.train import TrainConfig, train_starter

    cfg = TrainConfig(
        model_name=args.model_name,
        labels=args.labels,
        promote=not args.no_promote,
        epochs=args.epochs,
        max_rows=args.max_rows,
        max_heldout_rows=args.max_heldout_rows,
        text_tower=args.text_tower,
        feature_cache=args.feature_cache,
        threads=args.threads,
        seed=args.seed,
    )
    lake = lake_from_args(args, tracking=True)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    s = train_starter(lake, cfg, progress=progress)
    alias = " (alias champion)" if s.promoted else " (not promoted)"
    print(f"registered models:/{s.model_name}/{s.version}{alias}, MLflow run {s.run_id}")
    print(
        f"rows: {s.train_rows} train, {s.heldout_rows} held-out, {s.skipped_rows} rejected by preprocessing; "
        f"towers {s.feature_seconds:.0f} s (text padding {s.padding_share:.1%}), fusion {s.train_seconds:.0f} s"
    )
    print("held-out   head             AUC     AP  positives")
    for head in cfg.heads:
        auc = s.metrics.get(f"auc_{head}", math.nan)
        ap = s.metrics.get(f"ap_{head}", math.nan)
        npos = int(s.metrics.get(f"heldout_positives_{head}", 0))
        print(f"           {head:<15} {auc:6.3f} {ap:6.3f}  {npos:>9}")
    print(
        "held-out per language (positives/rows, AUC where >= 10 positives and 10 negatives; "
        "evaluation/per_language.csv has them all):"
    )
    for head in cfg.heads:
        cells = [
            f"{r['language']} {r['positives']}/{r['rows']}" + (f" {r['auc']:.3f}" if r["auc"] is not None else "")
            for r in s.per_language
            if r["head"] == head
        ]
        print(f"  {head}: " + ", ".join(cells))
    print("held-out per signal (positives of that kind against all negatives): " + _signals(s.per_signal))
    print("zero-shot (held-out languages with no training positive of the head):")
    if not s.zero_shot:
        print("  none: every held-out language had training positives of every head")
    for head in cfg.heads:
        cells = [
            f"{r['language']} {r['positives']}/{r['rows']}" + (f" {r['auc']:.3f}" if r["auc"] is not None else "")
            for r in s.zero_shot
            if r["head"] == head
        ]
        if cells:
            print(f"  {head}: " + ", ".join(cells))
    return 0


def _signals(rows: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['head']} {r['signal']} {r['auc']:.3f} ({r['positives']})" for r in rows) or "none"
