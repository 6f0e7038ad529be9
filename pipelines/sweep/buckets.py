"""The sweep's per-bucket passes (a hash of content_id, :mod:`pipelines.audit.buckets`) and their merges.

Pass 1, :func:`behind_bucket`: the current decisions of a bucket, counted per (policy version,
model): the driver picks the pack and the model behind them from those counts alone.

Pass 2, :func:`sweep_bucket`: a bucket's decision rows and its stored score rows (one model
version, the policies whose head a changed policy reads). In the bucket: the current decisions,
the keys held by a decision of record (source ``human_review`` or ``appeal``: a sweep never
re-decides them, :data:`pipelines.current.RECORD_SOURCES`), the "before" action per key, the new
decisions from the stored scores, the transition counts (exact: an item lives in one bucket),
and, unless a dry run, the commits: the bucket's new rows in chunks of at most ``chunk_rows``,
each exactly once under its own application transaction. Only the counts leave the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl

from pipelines.buckets import count_by
from pipelines.current import KEY, current_rows, is_of_record
from pipelines.lake import Lake
from pipelines.policy import Pack, decide
from pipelines.scoring.commit import head_rows
from pipelines.sink import SeenKeys, commit_once
from pipelines.sweep.mailbox import RunIdBox
from pipelines.sweep.transitions import matrix, pairs, summarize, summary, transition_matrix

CHUNK_SEED = 0x5EE9


def behind_bucket(decisions: pl.DataFrame) -> pl.DataFrame:
    """Current decisions per (policy_version, model_name, model_version, source): counts."""
    # One chunk per column first: the group-bys below are several times slower over many.
    return count_by(current_rows(decisions.rechunk()), ["policy_version", "model_name", "model_version"])


def merge_counts(parts: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat([p for p in parts if p.height] or parts[:1], how="vertical_relaxed")
    return (
        frame.group_by("policy_version", "model_name", "model_version")
        .agg(pl.col("n").sum())
        .sort("n", "policy_version", "model_name", "model_version", descending=[True, False, False, False])
    )


@dataclass(frozen=True)
class BucketJob:
    """What every pass-2 task needs besides its rows (small; pickled to Ray workers)."""

    lake: Lake
    old: Pack
    new: Pack
    policies: tuple[str, ...]
    market_codes: tuple[str, ...]
    model_version: str
    chunk_rows: int
    job: str | None  # None: dry run (no commits)
    run_id: str | None
    decisions_version: int
    metadata: dict[str, str]
    run_box: RunIdBox | None = None
    """When ``run_id`` is None on a committing job: where the run id comes from once the driver
    has started the run (:mod:`pipelines.sweep.mailbox`)."""


@dataclass
class BucketResult:
    summary: pl.DataFrame
    matrix: pl.DataFrame
    score_rows: int
    written: int
    held_by_record: int


def _empty_states() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "scope": pl.String, "scope_kind": pl.String, "content_id": pl.String, "policy_id": pl.String,
            "old_action": pl.String, "new_action": pl.String,
        }
    )  # fmt: skip


def sweep_bucket(decisions: pl.DataFrame, stored: pl.DataFrame, bucket: int, job: BucketJob) -> BucketResult:
    """Re-decide one bucket; commit its rows unless ``job.job`` is None; return its counts."""
    policies = list(job.policies)
    current = current_rows(decisions)
    # Keys whose decision in force is a decision of record are left as they are.
    held = current.filter(pl.col("policy_id").is_in(policies) & is_of_record()).select(KEY)
    # "Before" is each key's latest row under any other pack version (on a first run: current).
    if (current["policy_version"] == job.new.policy_version).any():
        others = decisions.filter(pl.col("policy_version") != job.new.policy_version)
        before = current_rows(others)
    else:
        before = current
    old_current = before.filter(pl.col("policy_id").is_in(policies)).select(*KEY, "action")
    decided = pl.DataFrame()
    if policies and stored.height:
        restricted = replace(job.new, policies=tuple(p for p in job.new.policies if p.id in job.policies))
        decided = decide(head_rows(stored, job.old), restricted)
        if job.market_codes:
            decided = decided.filter(pl.col("market").is_in(list(job.market_codes)))
        if held.height and decided.height:
            decided = decided.join(held, on=list(KEY), how="anti")
    counts = transition_matrix(pairs(old_current, decided)) if decided.height else matrix(_empty_states())
    written = 0
    if job.job is not None and decided.height:
        # Chunks follow the bucket's stored score rows (pinned: the same on a re-run), so a re-run
        # names the same chunks; rows a killed run already committed are then dropped.
        n_chunks = max(1, math.ceil(stored.height / job.chunk_rows))
        chunked = decided.drop("chunk_id", strict=False).with_columns(
            (pl.col("content_id").hash(seed=CHUNK_SEED) % n_chunks).cast(pl.Int64).alias("chunk_id")
        )
        done = decisions.filter(
            (pl.col("policy_version") == job.new.policy_version) & (pl.col("model_version") == job.model_version)
        ).select(KEY)
        written = _commit(job, bucket, chunked.join(done, on=list(KEY), how="anti") if done.height else chunked)
    return BucketResult(summarize(counts), counts, stored.height, written, held.height)


def _commit(job: BucketJob, bucket: int, chunked: pl.DataFrame) -> int:
    """The bucket's rows, chunk by chunk (``chunk_id``), each chunk committed exactly once."""
    if chunked.height == 0:
        return 0
    assert job.job is not None
    if job.run_id is None:
        assert job.run_box is not None
        job = replace(job, run_id=job.run_box.get(), run_box=None)
    assert job.run_id is not None
    # Rows other writers committed after the pinned version are dropped at commit time.
    ids = chunked["content_id"]
    seen = SeenKeys(
        KEY,
        {"policy_version": job.new.policy_version, "model_version": job.model_version},
        since_version=job.decisions_version,
        # Only rows in this bucket's id span can collide with its rows: other buckets' commits
        # are pruned by their row-group statistics instead of read.
        scope=pl.col("content_id").is_between(pl.lit(ids.min()), pl.lit(ids.max())) if ids.null_count() == 0 else None,
        # This run's own commits hold other keys (buckets and chunks are disjoint): not read.
        own_run=job.run_id,
    )
    written = 0
    distinct = chunked["chunk_id"].n_unique()
    # One chunk (the default: a partition commits once) needs no split, which would copy it.
    chunks = (
        [(chunked["chunk_id"][0], chunked)]
        if distinct == 1
        else [(k[0], part) for k, part in sorted(chunked.partition_by("chunk_id", as_dict=True).items())]
    )
    for chunk, part in chunks:
        rows = part.with_columns(
            pl.lit(job.run_id).alias("run_id"),
            pl.lit(job.model_version).alias("model_version"),
            pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias("decided_at"),
        )
        name = f"{bucket}.{chunk}"
        commit_once(
            job.lake, "decisions", rows.to_arrow(), app_id=f"sweep-{job.job}/decisions/{name}",
            metadata={**job.metadata, "run_id": job.run_id, "chunk": name}, dedup=seen,
        )  # fmt: skip
        written += rows.height
    return written


def merge_results(parts: list[BucketResult]) -> tuple[pl.DataFrame, pl.DataFrame, int, int, int]:
    """(summary, matrix, score rows, rows written, keys held by a decision of record) over all buckets."""
    summaries = [p.summary for p in parts if p.summary.height]
    matrices = [p.matrix for p in parts if p.matrix.height]
    empty_summary = summary(_empty_states())
    summ = (
        pl.concat(summaries, how="vertical_relaxed")
        .group_by("scope", "scope_kind", "policy_id")
        .agg(pl.exclude("scope", "scope_kind", "policy_id").sum())
        .select(empty_summary.columns)
        .cast(empty_summary.schema)
        .sort("scope_kind", "scope", "policy_id")
        if summaries
        else empty_summary
    )
    keys = ["scope", "scope_kind", "policy_id", "old_action", "new_action"]
    mat = (
        pl.concat(matrices, how="vertical_relaxed")
        .group_by(keys)
        .agg(pl.col("items").sum().cast(pl.UInt32))
        .sort("scope_kind", "scope", "policy_id", "old_action", "new_action")
        if matrices
        else matrix(_empty_states())
    )
    return (
        summ,
        mat,
        sum(p.score_rows for p in parts),
        sum(p.written for p in parts),
        sum(p.held_by_record for p in parts),
    )
