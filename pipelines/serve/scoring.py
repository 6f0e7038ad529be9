"""Score online requests with the backfill's own stages, so both paths give the same answer.

Nothing here re-implements scoring: rows in the backlog shape go through
:class:`pipelines.scoring.stages.Preprocess` (content hash, decode, the model's weight-free
preprocessor) and :class:`pipelines.scoring.stages.Score` (model loaded by URI, per-row error
isolation, non-finite guard), then :func:`pipelines.scoring.commit.scores_long` (which head a
policy reads) and :func:`pipelines.scoring.commit.decide_scores` (the same
:func:`pipelines.policy.decide` call the backfill commits). The only online-specific part is
turning the resulting frames into a JSON response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.lake import Lake
from pipelines.model import resolve_model
from pipelines.policy import Pack
from pipelines.schema import BACKLOG
from pipelines.scoring.commit import decide_scores, scores_long
from pipelines.scoring.stages import Preprocess, Score


@dataclass
class ItemError:
    """Why one item of a request could not be scored (the preprocessor's or the model's words)."""

    index: int
    content_id: str
    stage: str
    error_class: str
    message: str
    status: int = 422  # 500 only for a server fault isolated to this item

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "content_id": self.content_id,
            "stage": self.stage,
            "error_class": self.error_class,
            "message": self.message,
        }


@dataclass
class Scored:
    """The outcome of one scoring call over a batch of rows.

    results: one JSON-able dict per row that scored, keyed by the row's position.
    errors: one :class:`ItemError` per row that did not.
    long: the scores in the backfill's long shape (``chunk_id`` = row position), what the
        decision log commits through the backfill's sink.
    """

    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, ItemError] = field(default_factory=dict)
    long: pl.DataFrame | None = None


class OnlineScorer:
    """Model + pack of one replica; :meth:`score` is synchronous (call it off the event loop)."""

    def __init__(self, *, model_uri: str, lake_root: str, pack: Pack, num_cpus: float = 1.0) -> None:
        ref = resolve_model(model_uri, lake=Lake(lake_root))
        self._score = Score(ref, lake_root, max(1, round(num_cpus)))
        self.model = self._score.model
        self._preprocess = Preprocess(self.model.preprocessor())
        self.pack = pack

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.model.name, "version": str(self.model.version)}

    def score(self, rows: list[dict[str, Any]]) -> Scored:
        """Score backlog-shaped rows (see :func:`pipelines.serve.request.parse_body`)."""
        out = Scored()
        if not rows:
            return out
        table = pa.Table.from_pylist(rows, schema=BACKLOG)
        # chunk_id carries the row's position through scores_long and decide.
        table = table.append_column("chunk_id", pa.array(range(len(rows)), pa.int64()))
        frame = pl.from_arrow(self._score(self._preprocess(table)))
        assert isinstance(frame, pl.DataFrame)  # a Table always converts to a DataFrame
        failed = frame.filter(pl.col("error_class").is_not_null())
        for row in failed.iter_rows(named=True):
            pos = int(row["chunk_id"])
            out.errors[pos] = ItemError(
                pos, row["content_id"], row["error_stage"], row["error_class"], row["error_message"] or ""
            )
        ok = frame.filter(pl.col("error_class").is_null())
        if ok.height == 0:
            return out
        long = scores_long(ok, tuple(self.model.heads), self.pack)
        out.long = long
        decided = decide_scores(long, self.pack)
        sha = dict(zip(ok["chunk_id"].to_list(), ok["content_sha256"].to_list(), strict=True))
        for (pos,), part in long.group_by(["chunk_id"], maintain_order=True):
            out.results[int(pos)] = {  # type: ignore[call-overload]
                "content_id": part["content_id"][0],
                "content_sha256": sha[pos],
                "scores": dict(zip(part["policy_id"].to_list(), part["score"].to_list(), strict=True)),
                "actions": {},
                "decisions": [],
            }
        for d in decided.select(
            "chunk_id", "market", "policy_id", "action", "score", "threshold", "automated"
        ).iter_rows(named=True):
            item = out.results[int(d.pop("chunk_id"))]
            item["actions"].setdefault(d["market"], {})[d["policy_id"]] = d["action"]
            item["decisions"].append(d)
        return out
