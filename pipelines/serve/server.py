"""Start, run and stop the online endpoint on Ray Serve.

The model is resolved and checked once here, on the driver, before any replica starts: a
wrong URI or a pack needing heads the model lacks fails the command with one line instead of
replicas crash-looping. An alias is pinned to its version, so a promotion while the server
runs does not make replicas disagree (redeploy to pick it up).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import nullcontext
from typing import Any

from pipelines.model import check_heads, load_model
from pipelines.policy import load_pack
from pipelines.ray_connect import connect
from pipelines.serve.app import ReplicaSettings, Scorer
from pipelines.serve.config import APP_NAME, ServeConfig

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None) -> None:
    """Join ``address`` / ``$RAY_ADDRESS`` if set, else start a local Ray (no-op if connected).

    A cluster that does not answer within 60 s fails with one line (see pipelines.ray_connect).
    """
    connect(address)


def build_app(config: ServeConfig, *, run_id: str | None = None) -> Any:
    """The Serve application for ``config`` (a bound deployment); Ray must be initialised."""
    import ray

    pack = load_pack(config.policy)
    model = load_model(config.model_uri, lake=config.lake)
    check_heads(model, [p.head for p in pack.policies], uri=config.model_uri)
    pinned = f"models:/{model.name}/{model.version}" if config.model_uri.startswith("models:/") else config.model_uri
    gpus = int(ray.cluster_resources().get("GPU", 0))
    settings = ReplicaSettings(
        model_uri=pinned,
        lake_root=config.lake.root,
        pack=pack,
        token=None if config.insecure_no_auth else config.token,
        max_body_bytes=config.max_body_bytes,
        limits=config.limits,
        max_batch_size=config.max_batch_size,
        batch_wait_s=config.batch_wait_s,
        replica_cpus=config.replica_cpus,
        run_id=run_id if config.log_decisions else None,
        log=config.log,
    )
    deployment: Any = Scorer  # @serve.deployment made it a Deployment (mypy sees the class)
    return deployment.options(
        num_replicas=config.num_replicas or max(1, gpus),
        ray_actor_options={"num_cpus": config.replica_cpus, "num_gpus": 1 if gpus else 0},
    ).bind(settings)


def start(config: ServeConfig, *, run_id: str | None = None, ray_address: str | None = None) -> str:
    """Deploy on Ray Serve (starting Ray and Serve if needed); returns the base URL."""
    from ray import serve

    if config.insecure_no_auth:
        log.warning(
            "AUTHENTICATION IS OFF (--insecure-no-auth): anyone who reaches %s:%d can score", config.host, config.port
        )
        print(
            f"WARNING: serving WITHOUT authentication (--insecure-no-auth) on {config.host}:{config.port}; "
            "never expose this to a network",
            file=sys.stderr,
        )
    ensure_ray(ray_address)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_app(config, run_id=run_id), name=APP_NAME, route_prefix="/", blocking=False)
    return f"http://{config.host}:{config.port}"


def stop() -> None:
    """Delete the application (replicas flush their decision logs); Ray keeps running."""
    from ray import serve

    serve.delete(APP_NAME)


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM (``ray job stop``, ``kill``, Kubernetes) like Ctrl-C.

    Serve applications outlive the driver that deployed them; without this, a terminated
    driver would leave the endpoint running with nobody to shut it down.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def serve_forever(config: ServeConfig, *, ray_address: str | None = None) -> None:
    """Start, then block until Ctrl-C or SIGTERM, then delete the app and shut Serve down cleanly."""
    from ray import serve

    from pipelines.tracking import job_run

    _interrupt_on_sigterm()

    run_ctx: Any = job_run(config.lake, job="serve") if config.log_decisions else nullcontext(None)
    with run_ctx as run:
        run_id = run.run_id if run is not None else None
        if run_id is not None:
            from pipelines.policy import record_pack

            record_pack(config.lake, load_pack(config.policy), run_id=run_id)
        try:
            # Inside the try: a Ctrl-C while replicas start must still remove the application.
            url = start(config, run_id=run_id, ray_address=ray_address)
            print(f"serving {url}/v1/score (healthz: {url}/healthz); Ctrl-C to stop", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping: deleting the application and shutting Serve down", file=sys.stderr, flush=True)
        finally:
            _shutdown(serve)


def _shutdown(serve: Any) -> None:
    import ray

    if not ray.is_initialized():
        return
    try:
        stop()
    except Exception:
        log.exception("could not delete the Serve application %s", APP_NAME)
    serve.shutdown()
