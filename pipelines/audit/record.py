"""Reviewed labels as decisions of record (``batchjobs review ingest --as-decisions``).

A review label judges one (content_id, policy_id) without naming a market or an action, so
it maps onto the item's automated decisions in force when it was labelled, market by market:

- negative label (not violating): action ``none`` in every market of the item (the
  restriction, if any, is lifted);
- positive label (violating): the automated action of that market, confirmed as it is
  (``remove`` stays ``remove``, and ``none``/``review`` stay as they were: the label cannot
  choose a stronger action; a complaint or a pack change can).

Rows carry ``source = human_review``, ``automated = NOT_AUTOMATED``, ``decided_at`` = the
label's ``labeled_at``; lineage: ``run_id`` = ``review:<sample_id>``, ``model_name`` =
``human_review``, ``model_version`` = the reviewer, ``source_version`` = the decisions table
version read. Labels already recorded (their ``run_id`` is in the table) are skipped, and the
commit's application transaction names the labels it records, so a re-run adds nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from pipelines.complaints.current import AUTOMATED_SOURCES, current_decisions
from pipelines.errors import BadInputError
from pipelines.lake import Lake, table_exists
from pipelines.schema import DECISIONS
from pipelines.sink import commit_once


@dataclass(frozen=True)
class RecordSummary:
    labels: int
    decisions: int
    committed: bool

    def line(self) -> str:
        return (
            f"review ingest: {self.decisions} decisions of record (source human_review) from {self.labels} new labels"
        )


def record_review_decisions(lake: Lake) -> RecordSummary:
    """Write every label in ``review_labels`` not yet recorded as decisions of record."""
    from deltalake import DeltaTable

    labels_uri, decisions_uri = lake.path("review_labels"), lake.path("decisions")
    if not table_exists(labels_uri) or not table_exists(decisions_uri):
        raise BadInputError("no review labels or no decisions in the lake: ingest labels after a backfill first")
    version = DeltaTable(decisions_uri).version()
    decisions = pl.scan_delta(decisions_uri, version=version)
    done = decisions.filter(pl.col("source") == "human_review").select("run_id").unique().collect()["run_id"]
    labels = (
        pl.read_delta(labels_uri)
        .sort("labeled_at")
        .unique("sample_id", keep="last")
        .with_columns(("review:" + pl.col("sample_id")).alias("run_id"))
        .filter(~pl.col("run_id").is_in(done.implode()))
    )
    if labels.height == 0:
        return RecordSummary(labels=0, decisions=0, committed=False)
    units = labels.select("content_id", "policy_id").unique()
    automated = decisions.filter(pl.col("source").is_in(list(AUTOMATED_SOURCES))).join(
        units.lazy(), on=["content_id", "policy_id"], how="inner"
    )
    asked = labels.select(
        "sample_id", "content_id", "policy_id", "label", "reviewer", "labeled_at", pl.col("run_id").alias("__run")
    ).lazy()
    pairs = automated.join(asked, on=["content_id", "policy_id"], how="inner").filter(
        pl.col("decided_at") <= pl.col("labeled_at")
    )
    in_force = current_decisions(pairs, key=["sample_id", "market"])
    rows = (
        in_force.collect()
        .with_columns(
            pl.when(pl.col("label")).then(pl.col("action")).otherwise(pl.lit("none")).alias("action"),
            pl.lit("NOT_AUTOMATED").alias("automated"),
            pl.col("__run").alias("run_id"),
            pl.lit("human_review").alias("source"),
            pl.lit("human_review").alias("model_name"),
            pl.col("reviewer").alias("model_version"),
            pl.lit(version, dtype=pl.Int64).alias("source_version"),
            pl.col("labeled_at").alias("decided_at"),
        )
        .select(DECISIONS.names)
    )
    digest = hashlib.sha256("\n".join(sorted(labels["run_id"].to_list())).encode()).hexdigest()[:24]
    committed = commit_once(
        lake, "decisions", rows.to_arrow(), app_id=f"review-decisions/{digest}",
        metadata={"job": "review-ingest", "as": "decisions-of-record"},
    )  # fmt: skip
    return RecordSummary(labels=labels.height, decisions=rows.height, committed=committed)
