"""Online scoring on Ray Serve with the backfill's model interface, stages and decide.

Import :mod:`pipelines.serve.server` (Ray Serve) only where a server is started: request
parsing, auth and the decision log work without Ray.
"""

from __future__ import annotations

from pipelines.serve.auth import TOKEN_ENV, check_bearer, load_token
from pipelines.serve.config import APP_NAME, DEFAULT_MAX_BODY_BYTES, ServeConfig
from pipelines.serve.decision_log import DecisionLog, LogConfig
from pipelines.serve.request import Limits, RequestError, parse_body

__all__ = [
    "APP_NAME",
    "DEFAULT_MAX_BODY_BYTES",
    "TOKEN_ENV",
    "DecisionLog",
    "Limits",
    "LogConfig",
    "RequestError",
    "ServeConfig",
    "check_bearer",
    "load_token",
    "parse_body",
]
