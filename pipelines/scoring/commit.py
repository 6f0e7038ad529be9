"""Commit one unit of work exactly once: dead letters, scores, decisions (shared by backfill, serve, sweep).

Order inside a unit: dead letters, then scores, then decisions, each an application
transaction named ``<job>/<table>/<unit>``; the decisions commit is made even when empty, so it
marks the unit done. A crash between two of them is repaired by the next run: rows with scores
but no decisions under this policy version are re-decided from the stored scores (no model
needed), and committed transactions are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

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
    for policy in pack.model_policies:  # a policy without a head is decided by hash matches only
        idx = heads.index(str(policy.head))
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
                *[c for c in ("source_file", "source_row") if c in rows.columns],
            )
        )
    return pl.concat(parts)


def head_rows(long: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """Turn stored per-policy score rows into the per-head rows :func:`decide` reads.

    The ``scores`` table has one row per policy (the contract); ``decide`` takes one row per
    head and lets every policy of the pack that reads the head decide from it. Two policies
    reading one head give two identical score rows: keep one.
    """
    heads = {p.id: str(p.head) for p in pack.model_policies}
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
    """Writes one job's units; keeps the per-table key caches used to drop rows already there.

    since: per table, the version whose keys the job already checked when it planned (the
    backfill's key-level checks); the caches then read only what other writers committed after
    it. A table missing from ``since`` is read whole on first use (serve, small sweeps).
    """

    lake: Lake
    lineage: Lineage
    pack: Pack
    seen: dict[str, SeenKeys] = field(default_factory=dict)
    since: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mv = self.lineage.model_version
        v = self.since.get
        self.seen = {
            "dead_letters": SeenKeys(("locator",), {"model_version": mv}, since_version=v("dead_letters")),
            "scores": SeenKeys(("content_id", "content_sha256"), {"model_version": mv}, since_version=v("scores")),
            "decisions": SeenKeys(
                ("content_id",),
                {"model_version": mv, "policy_version": self.lineage.policy_version},
                since_version=v("decisions"),
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

    def media_hashes(self, frame: pl.DataFrame, chunk: int | str) -> None:
        """``frame``: content_id, frame, pdq, quality, content_sha256 (one row per image or keyframe)."""
        lin = self.lineage
        out = frame.with_columns(
            pl.lit(lin.run_id).alias("run_id"),
            pl.lit(lin.source_version, pl.Int64).alias("source_version"),
            pl.lit(_now()).dt.cast_time_unit("us").alias("hashed_at"),
        )
        app_id = f"{lin.job}/media_hashes/{chunk}"
        commit_once(
            self.lake, "media_hashes", out.to_arrow(), app_id=app_id, metadata=lin.metadata("media_hashes", chunk)
        )

    def _stamped(self, frame: pl.DataFrame, at: str) -> pl.DataFrame:
        """``frame`` with the model lineage columns and the commit time in column ``at``."""
        lin = self.lineage
        return frame.with_columns(
            pl.lit(lin.run_id).alias("run_id"),
            pl.lit(lin.model_name).alias("model_name"),
            pl.lit(lin.model_version).alias("model_version"),
            pl.lit(lin.source_version, pl.Int64).alias("source_version"),
            pl.lit(_now()).dt.cast_time_unit("us").alias(at),
        )

    def scores(self, long: pl.DataFrame, chunk: int | str) -> None:
        self._commit("scores", self._stamped(long, "scored_at"), chunk)

    def decisions(self, long: pl.DataFrame, chunk: int | str, kind: str = "") -> int:
        """Decide ``long`` scores with the pack and commit; returns decision rows written.

        An empty ``long`` still commits (no rows, the transaction only): it marks the unit done.
        """
        lin = self.lineage
        if long.height == 0:
            from pipelines.schema import DECISIONS

            app_id = f"{lin.job}/decisions{kind}/{chunk}"
            meta = lin.metadata("decisions", chunk)
            commit_once(self.lake, "decisions", DECISIONS.empty_table(), app_id=app_id, metadata=meta)
            return 0
        # decided_at is the commit time of the decision (DESIGN "The lake").
        out = self._stamped(decide_scores(long, self.pack), "decided_at")
        self._commit("decisions", out, chunk, kind)
        return out.height
