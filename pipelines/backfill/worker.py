"""The backfill's actor: read one unit, score it, commit it, and report; then the next unit.

Each scoring actor takes whole units. A unit's rows are read from their slices of the pinned
files (media included, only this unit's row groups), the plan's exceptions applied, the rest
preprocessed and scored in length-sorted batches, and the unit committed at once: dead letters,
scores, decisions (the decisions commit, made even when empty, marks the unit done). So commits
follow the stream: a job killed at any point keeps every unit it finished, and an actor that
dies mid-unit is restarted by Ray and the unit retried, its commits idempotent by transaction.
Memory per actor is one unit.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.backfill.classify import EXCEPTION_SCHEMA, ScanSpec, before_or_at, in_window
from pipelines.backfill.read import MEDIA, META, read_table
from pipelines.backfill.units import Units
from pipelines.lake import Lake, table_exists
from pipelines.model.store import ModelRef
from pipelines.policy import Pack
from pipelines.scoring.commit import ChunkWriter, Lineage, scores_long
from pipelines.scoring.stages import Preprocess, Score

HASH_ALL, HASH_NEW, HASH_EDITS = 0, 1, 2

SUMMARY_SCHEMA = pa.schema(
    [
        ("unit", pa.int64()),
        ("rows", pa.int64()),
        ("scored", pa.int64()),
        ("dead", pa.int64()),
        ("redecided", pa.int64()),
        ("unchanged", pa.int64()),
        ("edits", pa.int64()),
        ("decisions", pa.int64()),
        ("hashed", pa.int64()),
        ("seconds", pa.float64()),
        ("pid", pa.int64()),
    ]
)


@dataclass(frozen=True)
class UnitJob:
    """What every unit of one run shares (sent once to each actor)."""

    spec: ScanSpec
    lineage: Lineage
    pack: Pack
    heads: tuple[str, ...]
    cutoff: tuple[Any, ...] | None
    batch_rows: int
    since_versions: dict[str, int | None]


def encode_exceptions(frame: pl.DataFrame) -> bytes:
    """A unit's exceptions as Arrow IPC bytes (what travels with the unit through Ray Data)."""
    sink = pa.BufferOutputStream()
    table = frame.to_arrow()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_exceptions(data: bytes) -> pl.DataFrame:
    if not data:
        return pl.DataFrame(schema=EXCEPTION_SCHEMA)
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _needs_media(exceptions: pl.DataFrame, slices: list[Any]) -> bool:
    """Whether a unit has rows to score (rows without an exception) or edits to check."""
    rows = sum(piece.stop - piece.start for piece in slices)
    # "score" among the exceptions: a row retried after an earlier dead letter (--retry-dead-letters).
    return exceptions.height < rows or bool(exceptions["status"].is_in(["known", "score"]).any())


class UnitRunner:
    """Scores and commits units in this process (the body of :class:`UnitScorer`)."""

    def __init__(self, job: UnitJob, model: ModelRef, lake_root: str, threads: int) -> None:
        self.job = job
        self.lake = Lake(lake_root)
        self.units = Units(job.spec.files, job.spec.chunk_rows)
        self.score = Score(model, lake_root, threads)
        self.pre = Preprocess(model.preprocessor(self.lake))
        self.writer = ChunkWriter(self.lake, job.lineage, job.pack, since=dict(job.since_versions))

    def run(self, unit: int, exceptions: pl.DataFrame, hash_mode: int = HASH_ALL) -> dict[str, Any]:
        """Score and commit one unit.

        hash_mode: which scored rows get their media hashed into ``media_hashes``:
        :data:`HASH_ALL` (none was hashed before), :data:`HASH_NEW` (some were: look them up),
        :data:`HASH_EDITS` (all were: only edited content is hashed again).
        """
        started = time.monotonic()
        spec = self.job.spec
        # Media is read only when a row will be scored or its content hash compared (an edit):
        # a unit of re-decisions, duplicates and done rows needs the metadata alone.
        media = _needs_media(exceptions, self.units.slices(unit))
        columns = (*META, *MEDIA) if media else META
        table = read_table(spec.table_uri, self.units.slices(unit), columns, spec.schema)
        rows = pl.from_arrow(table)
        assert isinstance(rows, pl.DataFrame)
        total = rows.height
        selected = in_window(spec)
        if self.job.cutoff is not None:
            selected = selected & before_or_at(self.job.cutoff)
        rows = rows.filter(selected)
        rows = rows.join(
            exceptions.drop("unit", "content_id"), on=["source_file", "source_row"], how="left"
        ).with_columns(
            pl.col("status").fill_null("score"),
            pl.col("locator").fill_null(pl.col("content_id")),
            pl.col("recorded").fill_null(False),
        )
        rows = rows.filter(pl.col("status") != "skip").with_columns(pl.lit(unit, pl.Int64).alias("chunk_id"))
        out: dict[str, Any] = {
            "unit": unit,
            "rows": total,
            "scored": 0,
            "dead": 0,
            "redecided": 0,
            "unchanged": 0,
            "edits": 0,
            "hashed": 0,
        }

        dead = rows.filter(pl.col("status") == "dead")
        dead_letters = [
            dead.select(
                "content_id", "locator", pl.lit("validate").alias("stage"), "error_class", "message", "chunk_id",
                "source_file", "source_row", "recorded",
            )
        ]  # fmt: skip
        out["dead"] += dead.height

        long_parts = []
        redecide = rows.filter(pl.col("status") == "redecide")
        if redecide.height:
            long_parts.append(self._stored_scores(redecide["content_id"].unique()))
            out["redecided"] = redecide.height

        todo = rows.filter(pl.col("status").is_in(["score", "known"])).drop("error_class", "message")
        if todo.height:
            scored = self._score(todo)
            if "known_sha" in scored.columns:
                unchanged = (pl.col("status") == "known") & (pl.col("content_sha256") == pl.col("known_sha"))
                out["unchanged"] = scored.filter(unchanged).height
                out["edits"] = scored.filter((pl.col("status") == "known") & ~unchanged).height
                scored = scored.filter(~unchanged)
            failed = scored.filter(pl.col("error_class").is_not_null())
            ok = scored.filter(pl.col("error_class").is_null())
            dead_letters.append(
                failed.select(
                    "content_id", "locator", pl.col("error_stage").alias("stage"), "error_class",
                    pl.col("error_message").alias("message"), "chunk_id", "source_file", "source_row", "recorded",
                )
            )  # fmt: skip
            out["dead"] += failed.height
            out["scored"] = ok.height
            if ok.height:
                long = scores_long(ok, self.job.heads, self.job.pack)
                self.writer.scores(long, unit)
                long_parts.append(long)
                hashes = self._hash_media(todo, ok, hash_mode)
                out["hashed"] = hashes.height
                if hashes.height:
                    self.writer.media_hashes(hashes, unit)

        letters = pl.concat(dead_letters, how="vertical_relaxed").filter(~pl.col("recorded")).drop("recorded")
        if letters.height:
            self.writer.dead_letters(letters, unit)
        long_all = pl.concat(long_parts, how="vertical_relaxed") if long_parts else pl.DataFrame()
        out["decisions"] = self.writer.decisions(long_all, unit)  # the unit's completion marker
        out["seconds"] = time.monotonic() - started
        out["pid"] = os.getpid()
        return out

    def _hash_media(self, todo: pl.DataFrame, ok: pl.DataFrame, mode: int) -> pl.DataFrame:
        """PDQ hash and quality of every image and keyframe of the rows that scored.

        Media is decoded here once for hashing (at most 512 px, as the reference hasher does);
        the model's preprocessor decodes to its own smaller size. An item scored by an earlier
        model version is not hashed again, unless its content changed (an edit).
        """
        from pipelines.hashes.pdq import hash_bytes

        rows = ok.select("content_id", "content_sha256", "status")
        if mode == HASH_EDITS:
            rows = rows.filter(pl.col("status") == "known")
        elif mode == HASH_NEW:
            uri = self.lake.path("media_hashes")
            if table_exists(uri):
                done = (
                    pl.scan_delta(uri)
                    .filter(pl.col("content_id").is_in(rows["content_id"].implode()))
                    .select("content_id")
                    .unique()
                    .collect()["content_id"]
                )
                rows = rows.filter((pl.col("status") == "known") | ~pl.col("content_id").is_in(done.implode()))
        media = rows.join(todo.select("content_id", "image", "frames"), on="content_id", how="left")
        out: dict[str, list[Any]] = {"content_id": [], "frame": [], "pdq": [], "quality": [], "content_sha256": []}
        for cid, sha, image, frames in media.select("content_id", "content_sha256", "image", "frames").iter_rows():
            for frame, data in ([(-1, image)] if image else []) + list(enumerate(frames or [])):
                try:
                    h = hash_bytes(data)
                except Exception:  # undecodable media was dead-lettered by the model's decoder if it mattered
                    continue
                for name, value in zip(out, (cid, frame, h.hash, h.quality, sha), strict=True):
                    out[name].append(value)
        return pl.DataFrame(
            out,
            schema={
                "content_id": pl.String, "frame": pl.Int32, "pdq": pl.Binary, "quality": pl.Int32,
                "content_sha256": pl.String,
            },
        )  # fmt: skip

    def _score(self, todo: pl.DataFrame) -> pl.DataFrame:
        prepared = self.pre(todo.to_arrow())
        # Length-sorted batches: padding follows the spread of lengths inside a batch.
        tokens = prepared.column("n_tokens").to_numpy(zero_copy_only=False)
        order = np.argsort(np.where(np.isnan(tokens.astype(float)), -1, tokens), kind="stable")
        prepared = prepared.take(pa.array(order))
        size = self.job.batch_rows
        parts = [self.score(prepared.slice(i, size)) for i in range(0, prepared.num_rows, size)]
        frame = pl.from_arrow(pa.concat_tables(parts, promote_options="default"))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def _stored_scores(self, ids: pl.Series) -> pl.DataFrame:
        """Per-policy score rows this model stored for ``ids`` (re-decided without the model)."""
        uri = self.lake.path("scores")
        if not table_exists(uri):
            return pl.DataFrame()
        policies = [p.id for p in self.job.pack.policies]
        long = (
            pl.scan_delta(uri)
            .filter(
                (pl.col("model_version") == self.job.lineage.model_version)
                & pl.col("content_id").is_in(ids.implode())
                & pl.col("policy_id").is_in(policies)
            )
            .sort("scored_at")
            .collect()
        )
        # An edited item has several score rows; the latest is the one in force.
        return long.unique(["content_id", "policy_id"], keep="last", maintain_order=True)


class UnitScorer:
    """Ray Data actor over unit items ``{"unit": int, "exceptions": bytes, "hash": int}``: one summary row each."""

    def __init__(self, job: UnitJob, model: ModelRef, lake_root: str, threads: int) -> None:
        import torch

        # Pin torch's threads to this actor's share of the CPUs, so actors on shared cores don't fight.
        torch.set_num_threads(threads)
        self.runner = UnitRunner(job, model, lake_root, threads)

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        rows = []
        for unit, data, mode in zip(batch["unit"], batch["exceptions"], batch["hash"], strict=True):
            rows.append(self.runner.run(int(unit), decode_exceptions(bytes(data)), int(mode)))
        return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)
