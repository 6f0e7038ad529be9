"""Assemble complete chunks and commit them exactly once: dead letters, scores, decisions.

Order inside a chunk: dead letters, then scores, then decisions, each an application
transaction named ``<job>/<table>/<chunk>``. A crash between two of them is repaired by the
next run: rows with scores but no decisions under this policy version are re-decided from
the stored scores (no model needed), and committed transactions are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.lake import Lake
from pipelines.policy import Pack, decide
from pipelines.sink import SeenKeys, commit_once


@dataclass
class Lineage:
    """What every row and every commit of one job records about where it came from."""

    job: str
    run_id: str
    model_name: str
    model_version: str
    source_version: int
    policy_version: str
    source_uri: str

    def metadata(self, table: str, chunk: int | str) -> dict[str, str]:
        return {
            "job": self.job,
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "source_uri": self.source_uri,
            "source_version": str(self.source_version),
            "policy_version": self.policy_version,
            "table": table,
            "chunk": str(chunk),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def scores_long(rows: pl.DataFrame, heads: tuple[str, ...], pack: Pack) -> pl.DataFrame:
    """One row per (content, policy) from per-row head score lists; a policy reads its head."""
    parts = []
    for policy in pack.policies:
        idx = heads.index(policy.head)
        parts.append(
            rows.select(
                "content_id",
                pl.lit(policy.id).alias("policy_id"),
                pl.col("head_scores").list.get(idx).cast(pl.Float32).alias("score"),
                "created_at",
                "region",
                "markets",
                "language",
                "content_type",
                "content_sha256",
                "chunk_id",
            )
        )
    return pl.concat(parts)


def head_rows(long: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """Turn stored per-policy score rows into the per-head rows :func:`decide` reads.

    The ``scores`` table has one row per policy (the contract); ``decide`` takes one row per
    head and lets every policy of the pack that reads the head decide from it. Two policies
    reading one head give two identical score rows: keep one.
    """
    heads = {p.id: p.head for p in pack.policies}
    out = long.filter(pl.col("policy_id").is_in(list(heads))).with_columns(
        pl.col("policy_id").replace_strict(heads, return_dtype=pl.String)
    )
    return out.unique(["content_id", "policy_id"], keep="first", maintain_order=True)


def decide_scores(long: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """Decisions for per-policy score rows (:func:`scores_long` shape) under ``pack``.

    The one score→decision mapping the backfill's commits and the online endpoint share.
    """
    return decide(head_rows(long, pack), pack)


@dataclass
class ChunkWriter:
    """Writes one job's chunks; keeps the per-table key caches used to drop rows already there."""

    lake: Lake
    lineage: Lineage
    pack: Pack
    seen: dict[str, SeenKeys] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mv = self.lineage.model_version
        self.seen = {
            "dead_letters": SeenKeys(("locator",), {"model_version": mv}),
            "scores": SeenKeys(("content_id",), {"model_version": mv}),
            "decisions": SeenKeys(
                ("content_id",), {"model_version": mv, "policy_version": self.lineage.policy_version}
            ),
        }

    def _commit(self, table: str, frame: pl.DataFrame, chunk: int | str, kind: str = "") -> bool:
        app_id = f"{self.lineage.job}/{table}{kind}/{chunk}"
        return commit_once(
            self.lake,
            table,
            frame.to_arrow(),
            app_id=app_id,
            metadata=self.lineage.metadata(table, chunk),
            dedup=self.seen[table],
        )

    def dead_letters(self, frame: pl.DataFrame, chunk: int | str) -> None:
        """``frame``: content_id, locator, stage, error_class, message, chunk_id."""
        lin = self.lineage
        out = frame.with_columns(
            pl.lit(lin.run_id).alias("run_id"),
            pl.lit(lin.model_version).alias("model_version"),
            pl.lit(lin.source_version, pl.Int64).alias("source_version"),
            pl.lit(_now()).dt.cast_time_unit("us").alias("failed_at"),
        )
        self._commit("dead_letters", out, chunk)

    def scores(self, long: pl.DataFrame, chunk: int | str) -> None:
        lin = self.lineage
        out = long.with_columns(
            pl.lit(lin.run_id).alias("run_id"),
            pl.lit(lin.model_name).alias("model_name"),
            pl.lit(lin.model_version).alias("model_version"),
            pl.lit(lin.source_version, pl.Int64).alias("source_version"),
            pl.lit(_now()).dt.cast_time_unit("us").alias("scored_at"),
        )
        self._commit("scores", out, chunk)

    def decisions(self, long: pl.DataFrame, chunk: int | str, kind: str = "") -> int:
        """Decide ``long`` scores with the pack and commit; returns decision rows written."""
        lin = self.lineage
        decided = decide_scores(long, self.pack)
        out = decided.with_columns(
            pl.lit(lin.run_id).alias("run_id"),
            pl.lit(lin.model_name).alias("model_name"),
            pl.lit(lin.model_version).alias("model_version"),
            pl.lit(lin.source_version, pl.Int64).alias("source_version"),
            # decided_at is the commit time of the decision (DESIGN "The lake").
            pl.lit(_now()).dt.cast_time_unit("us").alias("decided_at"),
        )
        self._commit("decisions", out, chunk, kind)
        return out.height


ROW_SCHEMA_KEYS = ("content_id", "chunk_id", "error_class")


class Commit:
    """Ray actor (one per job): gathers rows per chunk and commits each chunk once complete.

    Ray Data may split and merge blocks freely; the actor counts rows per chunk against the
    plan (``expected``), so a chunk is committed exactly when all its rows have arrived.
    Emits one summary row per committed chunk.
    """

    def __init__(self, lake_root: str, lineage: Lineage, pack: Pack, heads: tuple[str, ...], expected: dict[int, int]):
        self.writer = ChunkWriter(Lake(lake_root), lineage, pack)
        self.heads = heads
        self.expected = expected
        self.pending: dict[int, list[pa.Table]] = defaultdict(list)
        self.arrived: dict[int, int] = defaultdict(int)

    def __call__(self, batch: pa.Table) -> pa.Table:
        done: list[dict[str, Any]] = []
        chunks = batch.column("chunk_id").to_pylist()
        for chunk in sorted(set(chunks)):
            part = batch.filter(pa.compute.equal(batch.column("chunk_id"), chunk))
            self.pending[chunk].append(part)
            self.arrived[chunk] += part.num_rows
            if self.arrived[chunk] > self.expected.get(chunk, 0):
                raise RuntimeError(
                    f"chunk {chunk}: {self.arrived[chunk]} rows arrived, plan said {self.expected.get(chunk)}"
                )
            if self.arrived[chunk] == self.expected[chunk]:
                done.append(self._flush(chunk))
        return pa.Table.from_pylist(done, schema=SUMMARY_SCHEMA)

    def _flush(self, chunk: int) -> dict[str, Any]:
        rows = pl.from_arrow(pa.concat_tables(self.pending.pop(chunk), promote_options="default"))
        assert isinstance(rows, pl.DataFrame)
        # Duplicate ids: keep one copy deterministically (lowest content hash); the others
        # were dead-lettered at plan time.
        rows = rows.sort("content_id", "content_sha256").unique("content_id", keep="first", maintain_order=True)
        failed = rows.filter(pl.col("error_class").is_not_null())
        ok = rows.filter(pl.col("error_class").is_null())
        if failed.height:
            self.writer.dead_letters(
                failed.select(
                    "content_id",
                    pl.col("content_id").alias("locator"),
                    pl.col("error_stage").alias("stage"),
                    "error_class",
                    pl.col("error_message").alias("message"),
                    "chunk_id",
                ),
                chunk,
            )
        n_decisions = 0
        if ok.height:
            long = scores_long(ok, self.heads, self.writer.pack)
            self.writer.scores(long, chunk)
            n_decisions = self.writer.decisions(long, chunk)
        return {"chunk_id": chunk, "scored": ok.height, "dead": failed.height, "decisions": n_decisions}


SUMMARY_SCHEMA = pa.schema(
    [("chunk_id", pa.int64()), ("scored", pa.int64()), ("dead", pa.int64()), ("decisions", pa.int64())]
)
