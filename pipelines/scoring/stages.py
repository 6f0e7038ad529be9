"""The Ray Data stages of a backfill: select, preprocess (CPU tasks), score (actors), commit.

Rows travel as Arrow tables. A row that cannot be prepared or scored keeps flowing with its
error columns set, so the committer sees every planned row of a chunk, can tell when the
chunk is complete, and writes its dead letters in the same exactly-once unit as its scores.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.model.interface import INPUT_COLUMNS, PreparedBatch, Preprocessor, ScoringModel
from pipelines.model.store import ModelRef

META = ("content_id", "created_at", "region", "markets", "language", "content_type")
ERROR_COLUMNS = ("error_stage", "error_class", "error_message")
READ_COLUMNS = tuple(dict.fromkeys([*META, *INPUT_COLUMNS]))


def content_sha256(text: str | None, image: bytes | None, frames: list[bytes] | None) -> str:
    """SHA-256 over an item's content: what reports cite instead of the content itself."""
    h = hashlib.sha256()
    for part in (text.encode("utf-8", "surrogatepass") if text else b"", image or b"", *(frames or [])):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class ReadRows:
    """Read the planned rows of pinned backlog files, streaming, and tag them with their chunk.

    The files come from the Delta snapshot the plan pinned (``DeltaTable(uri, version).
    file_uris()``), so the read sees exactly that version. Each file is read in record
    batches, so a task's memory is bounded by one batch, not by the file.
    """

    def __init__(self, chunk_of_id: dict[str, int], columns: list[str], batch_rows: int = 256) -> None:
        self.chunk_of_id = chunk_of_id
        self.columns = columns
        self.batch_rows = batch_rows

    def __call__(self, files: dict[str, Any]) -> Iterator[pa.Table]:
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        for uri in files["path"]:
            fs, path = pafs.FileSystem.from_uri(str(uri))
            with fs.open_input_file(path) as handle:
                reader = pq.ParquetFile(handle)
                names = set(reader.schema_arrow.names)
                cols = [c for c in self.columns if c in names]
                for batch in reader.iter_batches(batch_size=self.batch_rows, columns=cols):
                    out = self._select(pa.Table.from_batches([batch]))
                    if out.num_rows:
                        yield out

    def _select(self, batch: pa.Table) -> pa.Table:
        ids = batch.column("content_id").to_pylist()
        chunks = [self.chunk_of_id.get(i) if i is not None else None for i in ids]
        out = batch.filter(pa.array([c is not None for c in chunks]))
        if "markets" not in out.column_names:
            out = out.append_column("markets", pa.array([[r] for r in out.column("region").to_pylist()]))
        for name in ("image", "frames"):
            if name not in out.column_names:
                typ = pa.binary() if name == "image" else pa.list_(pa.binary())
                out = out.append_column(name, pa.nulls(out.num_rows, typ))
        chunk_ids = pa.array([c for c in chunks if c is not None], type=pa.int64())
        return out.append_column("chunk_id", chunk_ids)


class Preprocess:
    """CPU task: hash content, decode and tokenize through the model's weight-free preprocessor."""

    def __init__(self, preprocessor: Preprocessor) -> None:
        self.pre = preprocessor

    def __call__(self, batch: pa.Table) -> pa.Table:
        cols = {name: batch.column(name).to_pylist() for name in INPUT_COLUMNS}
        n = batch.num_rows
        sha = [content_sha256(t, i, f) for t, i, f in zip(cols["text"], cols["image"], cols["frames"], strict=True)]
        stage: list[str | None] = [None] * n
        cls: list[str | None] = [None] * n
        msg: list[str | None] = [None] * n
        model_cols: dict[str, list[Any]] = {}
        n_tokens: list[int | None] = [None] * n
        try:
            prepared = self.pre(cols)
        except Exception as exc:  # a preprocessor bug must not lose the batch: isolate rows
            prepared = _prepare_one_by_one(self.pre, cols, n, exc)
        for err in prepared.errors:
            stage[err.index], cls[err.index], msg[err.index] = err.stage, err.error_class, err.message[:2000]
        for name, values in prepared.columns.items():
            full: list[Any] = [None] * n
            for pos, value in zip(prepared.index, values, strict=True):
                full[pos] = value
            model_cols[name] = full
        for pos, tokens in zip(prepared.index, prepared.n_tokens, strict=True):
            n_tokens[pos] = int(tokens)
        keep = [c for c in batch.column_names if c not in INPUT_COLUMNS or c in META]
        out = batch.select(keep)
        out = out.append_column("content_sha256", pa.array(sha, pa.string()))
        for name, values in zip(ERROR_COLUMNS, (stage, cls, msg), strict=True):
            out = out.append_column(name, pa.array(values, pa.string()))
        out = out.append_column("n_tokens", pa.array(n_tokens, pa.int64()))
        for name, values in model_cols.items():
            out = out.append_column(f"m_{name}", pa.array(values))
        return out


def _prepare_one_by_one(pre: Preprocessor, cols: dict[str, list[Any]], n: int, first: Exception) -> PreparedBatch:
    from pipelines.model.interface import RowError

    merged = PreparedBatch(index=[], columns={}, n_tokens=[], errors=[])
    for i in range(n):
        row = {k: [v[i]] for k, v in cols.items()}
        try:
            one = pre(row)
        except Exception as exc:
            merged.errors.append(RowError(i, "preprocess", type(exc).__name__, str(exc) or repr(exc)))
            continue
        merged.errors.extend(RowError(i, e.stage, e.error_class, e.message) for e in one.errors)
        if one.index:
            merged.index.append(i)
            merged.n_tokens.append(one.n_tokens[0])
            for k, v in one.columns.items():
                merged.columns.setdefault(k, []).append(v[0])
    return merged


class Score:
    """Actor: loads the model once, scores prepared rows, passes failed rows through."""

    def __init__(self, model: ModelRef, lake_root: str, threads: int) -> None:
        import torch

        from pipelines.lake import Lake

        # Pin torch's threads to this actor's share of the CPUs, so actors on shared cores don't fight.
        torch.set_num_threads(threads)
        self.model: ScoringModel = model.load(Lake(lake_root))
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.pid = os.getpid()

    def __call__(self, batch: pa.Table) -> pa.Table:
        errors = batch.column("error_class").to_pylist()
        ok = [i for i, e in enumerate(errors) if e is None]
        n_heads = len(self.model.heads)
        scores: list[list[float] | None] = [None] * batch.num_rows
        stage = batch.column("error_stage").to_pylist()
        msg = batch.column("error_message").to_pylist()
        m_cols = [c for c in batch.column_names if c.startswith("m_")]
        if ok:
            cols = {c[2:]: batch.column(c).take(ok).to_pylist() for c in m_cols}
            tokens = batch.column("n_tokens").take(ok).to_pylist()
            prepared = PreparedBatch(index=list(range(len(ok))), columns=cols, n_tokens=tokens)
            try:
                out = np.asarray(self.model.score(prepared), dtype=np.float32).reshape(len(ok), n_heads)
                for j, i in enumerate(ok):
                    scores[i] = out[j].tolist()
            except Exception:
                # Isolate the row that breaks the model; the rest of the batch still scores.
                for j, i in enumerate(ok):
                    one = PreparedBatch(index=[0], columns={k: [v[j]] for k, v in cols.items()}, n_tokens=[tokens[j]])
                    try:
                        scores[i] = np.asarray(self.model.score(one), dtype=np.float32).reshape(n_heads).tolist()
                    except Exception as exc:
                        stage[i], errors[i], msg[i] = "score", type(exc).__name__, (str(exc) or repr(exc))[:2000]
        for i, s in enumerate(scores):
            if s is not None and not all(np.isfinite(s)):
                scores[i] = None
                stage[i], errors[i], msg[i] = "score", "NonFiniteScore", "the model returned NaN or infinity"
        keep = [c for c in batch.column_names if not c.startswith("m_") and c not in ERROR_COLUMNS]
        out_tbl = batch.select(keep)
        out_tbl = out_tbl.append_column("error_stage", pa.array(stage, pa.string()))
        out_tbl = out_tbl.append_column("error_class", pa.array(errors, pa.string()))
        out_tbl = out_tbl.append_column("error_message", pa.array(msg, pa.string()))
        return out_tbl.append_column("head_scores", pa.array(scores, pa.list_(pa.float32())))
