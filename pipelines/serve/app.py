"""The Ray Serve deployment: HTTP routes, auth, size limits, dynamic batching, decision log.

Routes (FastAPI ingress):

- ``GET /healthz``: 200 ``{"status": "ok"}`` (no token: load balancers probe it).
- ``GET /v1/policies``: the pack's policies, versions and the model's heads (token needed).
- ``POST /v1/score``: one item, a list, or ``{"items": [...]}`` -> per item the score of
  every policy and the action in every requested market, with model and policy versions.

Every client error is answered with a JSON ``{"error": ...}`` and a 4xx status, and every
unexpected one with a 500 that names no internals: a handler never lets an exception take
the replica down. Items of concurrent requests are scored together through
``@serve.batch``; a request waits for its own items only.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations at
# runtime to inject `Request`, and Serve's ingress wrapper loses this module's globals.
import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from pipelines.policy import Pack
from pipelines.serve.auth import check_bearer
from pipelines.serve.decision_log import DecisionLog, LogConfig
from pipelines.serve.request import Limits, RequestError, parse_body
from pipelines.serve.scoring import ItemError, OnlineScorer

log = logging.getLogger(__name__)
api = FastAPI(title="trustbatch online scoring", docs_url=None, redoc_url=None, openapi_url=None)


@dataclass(frozen=True)
class ReplicaSettings:
    """What every replica needs; built by :func:`pipelines.serve.server.build_app`.

    model_uri is pinned to ``models:/NAME/VERSION`` so replicas never disagree.
    run_id names the MLflow run logged decisions belong to (None: no decision log).
    """

    model_uri: str
    lake_root: str
    pack: Pack
    token: str | None
    max_body_bytes: int
    limits: Limits
    max_batch_size: int
    batch_wait_s: float
    replica_cpus: float
    run_id: str | None
    log: LogConfig


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise RequestError(413, f"request body of {size} bytes > limit {limit}; send fewer or smaller items")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body > limit {limit} bytes; send fewer or smaller items")
    return bytes(body)


@serve.deployment(name="Scorer", max_ongoing_requests=256, graceful_shutdown_timeout_s=60)
@serve.ingress(api)
class Scorer:
    """One replica: the model loaded once, requests batched across callers."""

    def __init__(self, settings: ReplicaSettings) -> None:
        self.s = settings
        self.scorer = OnlineScorer(
            model_uri=settings.model_uri,
            lake_root=settings.lake_root,
            pack=settings.pack,
            num_cpus=settings.replica_cpus,
        )
        batcher: Any = self._score_batch  # @serve.batch wraps it in an object with setters
        batcher.set_max_batch_size(settings.max_batch_size)
        batcher.set_batch_wait_timeout_s(settings.batch_wait_s)
        self.decision_log: DecisionLog | None = None
        if settings.run_id is not None:
            self.decision_log = DecisionLog(self._writer(settings), settings.log)

    def _writer(self, settings: ReplicaSettings) -> Any:
        from pipelines.lake import Lake
        from pipelines.scoring.commit import ChunkWriter, Lineage

        try:
            replica = serve.get_replica_context().replica_tag
        except Exception:  # outside a replica (direct construction)
            replica = uuid.uuid4().hex[:8]
        model = self.scorer.model
        assert settings.run_id is not None
        lineage = Lineage(
            # One job per replica start: its micro-batches are chunks 0, 1, 2, ...
            job=f"serve-{settings.run_id}-{replica}",
            run_id=settings.run_id,
            model_name=model.name,
            model_version=str(model.version),
            source_version=-1,  # no backlog table version: items came over HTTP
            policy_version=settings.pack.policy_version,
            source_uri="online:POST /v1/score",
        )
        writer = ChunkWriter(Lake(settings.lake_root), lineage, settings.pack)

        def commit(long: pl.DataFrame, seq: int) -> None:
            writer.decisions(long.with_columns(pl.lit(seq, pl.Int64).alias("chunk_id")), seq)

        return commit

    def __del__(self) -> None:
        if getattr(self, "decision_log", None) is not None:
            self.decision_log.close()  # type: ignore[union-attr]

    def _score_one(self, row: dict[str, Any]) -> tuple[dict[str, Any], pl.DataFrame] | ItemError:
        try:
            scored = self.scorer.score([row])
        except Exception:
            log.exception("item %r failed", row.get("content_id"))
            return ItemError(0, str(row.get("content_id")), "serve", "InternalError", "internal error", status=500)
        if 0 in scored.errors:
            return scored.errors[0]
        assert scored.long is not None
        return scored.results[0], scored.long

    @api.get("/healthz")
    async def healthz(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @api.get("/v1/policies")
    async def policies(self, request: Request) -> JSONResponse:
        try:
            check_bearer(request.headers.get("authorization"), self.s.token)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        pack = self.s.pack
        return JSONResponse(
            {
                "policy_version": pack.policy_version,
                "policy_sha256": pack.sha256,
                "model": self.scorer.model_info,
                "heads": list(self.scorer.model.heads),
                "policies": [
                    {"id": p.id, "title": p.title, "head": p.head, "category": p.category, "actions": list(p.actions)}
                    for p in pack.policies
                ],
            }
        )

    @api.post("/v1/score")
    async def score(self, request: Request) -> JSONResponse:
        try:
            check_bearer(request.headers.get("authorization"), self.s.token)
            rows = parse_body(await read_limited(request, self.s.max_body_bytes), limits=self.s.limits)
            outcomes = await asyncio.gather(*(self._score_batch(row) for row in rows))
        except RequestError as exc:
            return _error(exc.status, exc.message)
        except Exception:
            log.exception("unexpected error scoring a request")
            return _error(500, "internal error while scoring; the request was not scored (see the server log)")
        errors = []
        for i, o in enumerate(outcomes):
            if isinstance(o, ItemError):
                o.index = i  # position in this request, not in the shared batch
                errors.append(o)
        if errors:
            first = errors[0]
            return _error(
                max(e.status for e in errors),
                f"item {first.index} ({first.content_id}): {first.error_class}: {first.message}",
                errors=[e.to_json() for e in errors],
            )
        items = [o[0] for o in outcomes if not isinstance(o, ItemError)]
        if self.decision_log is not None:
            self.decision_log.add(pl.concat([o[1] for o in outcomes if not isinstance(o, ItemError)]))
        pack = self.s.pack
        return JSONResponse({"model": self.scorer.model_info, "policy_version": pack.policy_version, "items": items})

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _score_batch(self, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], pl.DataFrame] | ItemError]:
        # Scoring is CPU/accelerator work: run it off the event loop so /healthz stays answered.
        try:
            scored = await asyncio.to_thread(self.scorer.score, rows)
        except Exception:
            # A fault the stages did not isolate: score row by row so that one request's
            # item cannot fail the other requests batched with it.
            log.exception("batch of %d items failed; retrying item by item", len(rows))
            return [await asyncio.to_thread(self._score_one, row) for row in rows]
        parts = scored.long.partition_by("chunk_id", as_dict=True) if scored.long is not None else {}
        out: list[tuple[dict[str, Any], pl.DataFrame] | ItemError] = []
        for pos in range(len(rows)):
            if pos in scored.errors:
                out.append(scored.errors[pos])
            else:
                out.append((scored.results[pos], parts[(pos,)]))
        return out
