"""batchjobs serve: the online scoring endpoint on Ray Serve (same model, stages and policy as backfill)."""

from __future__ import annotations

import argparse
import os

from batchjobs.commands._common import add_lake, lake_from_args, positive_int
from pipelines.errors import BadConfigError
from pipelines.serve import DEFAULT_MAX_BODY_BYTES, TOKEN_ENV, Limits, LogConfig, ServeConfig, load_token
from pipelines.serve.config import DEFAULT_MODEL_URI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="online scoring endpoint (Ray Serve): POST /v1/score, GET /healthz, /v1/policies")
    add_lake(p)
    p.add_argument("--model", default=DEFAULT_MODEL_URI, help=f"model URI or folder (default: {DEFAULT_MODEL_URI})")
    p.add_argument("--policy", default="default", help="policy pack file or bundled name (default: default)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1; 0.0.0.0 for a network)")
    p.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    p.add_argument("--token-file", help=f"file holding the bearer token (default: ${TOKEN_ENV})")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve WITHOUT authentication (local tests only)")
    p.add_argument("--max-body-bytes", type=positive_int, default=DEFAULT_MAX_BODY_BYTES, help="413 above (10 MB)")
    p.add_argument("--max-items", type=positive_int, default=256, help="items per request (default 256)")
    p.add_argument("--max-batch-size", type=positive_int, default=32, help="items per model call (default 32)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="wait to fill a batch (default 5 ms)")
    p.add_argument("--replicas", type=positive_int, help="scoring replicas (default: one per GPU, else one)")
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs per replica (default 1)")
    p.add_argument("--log-decisions", action="store_true", help="append online decisions to LAKE/decisions")
    p.add_argument("--log-max-rows", type=positive_int, default=5000, help="commit logged rows every N (5000)")
    p.add_argument("--log-max-seconds", type=float, default=5.0, help="... or every S seconds (default 5)")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"), help="existing Ray cluster (default: local)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.serve.server import serve_forever

    token = None if args.insecure_no_auth else load_token(token_file=args.token_file)
    try:
        limits = Limits(max_items=args.max_items)
        log = LogConfig(max_rows=args.log_max_rows, max_seconds=args.log_max_seconds)
    except ValueError as exc:
        raise BadConfigError(str(exc)) from None
    config = ServeConfig(
        lake=lake_from_args(args, tracking=True),
        model_uri=args.model,
        policy=args.policy,
        host=args.host,
        port=args.port,
        token=token,
        insecure_no_auth=args.insecure_no_auth,
        max_body_bytes=args.max_body_bytes,
        limits=limits,
        max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        num_replicas=args.replicas,
        replica_cpus=args.replica_cpus,
        log_decisions=args.log_decisions,
        log=log,
    )
    serve_forever(config, ray_address=args.ray_address)
    return 0
