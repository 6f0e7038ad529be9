"""Typed configuration of the online scoring endpoint (``batchjobs serve``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.errors import BadConfigError
from pipelines.lake import Lake
from pipelines.serve.decision_log import LogConfig
from pipelines.serve.request import Limits

DEFAULT_MODEL_URI = "models:/starter@champion"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
APP_NAME = "trustbatch"


@dataclass(frozen=True)
class ServeConfig:
    """What the endpoint serves and how.

    lake: the lake holding the model registry (and, with ``log_decisions``, the decisions table).
    model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a model folder; an alias is
        resolved once at start so every replica serves the same version.
    policy: a policy pack file or bundled pack name.
    host, port: where Serve's HTTP proxy listens (127.0.0.1 keeps it off the network).
    token: the bearer token clients must send; None only with ``insecure_no_auth``.
    insecure_no_auth: serve without authentication (local experiments only).
    max_body_bytes: larger request bodies get 413 before they are parsed.
    limits: items per request and frames per item.
    max_batch_size, batch_wait_s: dynamic batching (``@serve.batch``): items from concurrent
        requests are scored together, waiting at most ``batch_wait_s`` to fill a batch.
    num_replicas: scoring replicas (one per GPU when GPUs exist and this is None).
    replica_cpus: CPUs each replica reserves (torch threads are pinned to it).
    log_decisions: append online decisions to ``decisions`` through the exactly-once sink.
    log: when micro-batches of logged decisions are committed.
    """

    lake: Lake
    model_uri: str = DEFAULT_MODEL_URI
    policy: str = "default"
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    limits: Limits = field(default_factory=Limits)
    max_batch_size: int = 32
    batch_wait_s: float = 0.005
    num_replicas: int | None = None
    replica_cpus: float = 1.0
    log_decisions: bool = False
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        if self.token is None and not self.insecure_no_auth:
            raise BadConfigError(
                "no API token: set BATCHJOBS_TOKEN or pass --token-file FILE "
                "(or --insecure-no-auth to serve without authentication, never on a network)"
            )
        if not 0 <= self.port <= 65535:
            raise BadConfigError(f"--port must be in [0, 65535], got {self.port}")
        if not 1024 <= self.max_body_bytes <= 1 << 30:
            raise BadConfigError(f"--max-body-bytes must be in [1024, 1073741824], got {self.max_body_bytes}")
        if not 1 <= self.max_batch_size <= 4096:
            raise BadConfigError(f"--max-batch-size must be in [1, 4096], got {self.max_batch_size}")
        if not 0 <= self.batch_wait_s <= 1:
            raise BadConfigError(f"--batch-wait-ms must be in [0, 1000], got {self.batch_wait_s * 1000:g}")
        if self.num_replicas is not None and not 1 <= self.num_replicas <= 1024:
            raise BadConfigError(f"--replicas must be in [1, 1024], got {self.num_replicas}")
        if not 0 < self.replica_cpus <= 256:
            raise BadConfigError(f"--replica-cpus must be in (0, 256], got {self.replica_cpus}")
