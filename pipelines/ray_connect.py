"""Join the job's Ray cluster, or start a local Ray, within a bounded time.

``ray.init`` on its own retries an address that does not answer for many minutes (20 tries
of ~35 s, printing "Failed to connect to GCS at address ..."): what a job gets after a
``ray start --head`` cluster died without ``ray stop`` (its address stays in
``/tmp/ray/ray_current_cluster``, which ``ray.init()`` joins by default) or with a stale
``RAY_ADDRESS``. :func:`connect` resolves the address the way Ray does, checks that something
listens there before handing it to Ray, and fails with one line naming the address and what
to do when nothing does within ``timeout_s``.

When a job joins a running cluster from outside ``ray job submit`` (``--ray-address
HOST:PORT``), its tasks run in worker processes started by that cluster, which do not have
the driver's environment: :func:`connect` forwards the variables the lake needs (``AWS_*``
credentials and endpoint, ``MLFLOW_*`` tracking URI) through the job's runtime environment.
Under ``ray job submit`` the job's ``--runtime-env-json`` already gives them to every worker;
only variables it lacks are added (Ray refuses a driver that sets a job's variable again).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pipelines.errors import BadConfigError

DEFAULT_TIMEOUT_S = 60.0
LOCAL = "local"
FORWARDED_PREFIXES = ("AWS_", "MLFLOW_")
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray in the driver of a submitted job
_WHAT_TO_DO = "pass --ray-address local to start a local Ray instead, or start the cluster (ray start --head)"


def _ray_temp_dir() -> Path:
    # Ray's default temp dir: $RAY_TMPDIR, else $TMPDIR (Linux), else /tmp; then "ray".
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return Path(base or "/tmp") / "ray"


def resolve_address(address: str | None) -> tuple[str | None, str]:
    """The address a job would join and where it came from; (None, ...) means start a local Ray.

    Same order as ``ray.init``: an explicit address, else ``$RAY_ADDRESS``, else the cluster
    the last ``ray start`` recorded in ``<ray temp dir>/ray_current_cluster``.
    """
    if address == LOCAL:
        return None, "--ray-address local"
    if address and address != "auto":
        # The commands' --ray-address defaults to $RAY_ADDRESS: name what the user actually set.
        return address, f"RAY_ADDRESS={address}" if os.environ.get(
            "RAY_ADDRESS"
        ) == address else f"--ray-address {address}"
    env = os.environ.get("RAY_ADDRESS")
    if env == "auto":
        address = "auto"  # Ray's meaning: a running cluster, found below, or an error
    elif env:
        return (None, "RAY_ADDRESS=local") if env == LOCAL else (env, f"RAY_ADDRESS={env}")
    record = _ray_temp_dir() / "ray_current_cluster"
    try:
        recorded = record.read_text().strip()
    except OSError:
        recorded = ""
    if recorded:
        return recorded, f"{record}, left by `ray start`"
    if address == "auto":
        raise BadConfigError(f"--ray-address auto: no running Ray cluster found; {_WHAT_TO_DO}")
    return None, "no cluster configured"


def _host_port(address: str, source: str) -> tuple[str, int]:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise BadConfigError(f"Ray address {address!r} from {source} is not HOST:PORT; {_WHAT_TO_DO}")
    return host.strip("[]"), int(port)


def wait_for_port(host: str, port: int, *, timeout_s: float) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``timeout_s`` (retried every 0.5 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(5.0, left))):
                return True
        except OSError:
            if deadline - time.monotonic() <= 0.5:
                return False
            time.sleep(0.5)


def _job_env_vars() -> set[str]:
    """Variables the submitted job's runtime environment already sets (empty outside ray job submit)."""
    raw = os.environ.get(_JOB_CONFIG_ENV)
    if not raw:
        return set()
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
        return set(runtime_env.get("env_vars") or {})
    except (ValueError, AttributeError):
        return set()


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The driver's variables a joined cluster's workers need for the lake, less those the job sets."""
    env = os.environ if environ is None else environ
    taken = _job_env_vars()
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) and k not in taken}


def _quiet() -> None:
    # Ray Data reads this when first imported; a context that exists already is set directly.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if "ray.data" in sys.modules:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False


def connect(address: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the Ray cluster at ``address`` (None: ``$RAY_ADDRESS`` or the last ``ray start``), or start a local Ray.

    ``"local"`` always starts a fresh local Ray, whatever ``$RAY_ADDRESS`` or a recorded
    cluster say. A cluster that does not answer within ``timeout_s`` raises
    :class:`BadConfigError` with one line naming the address. No-op if Ray is initialised.
    Ray's dashboard is not started, and its logs and progress bars stay off the terminal.
    """
    import ray

    if ray.is_initialized():
        return
    target, source = resolve_address(address)
    options: dict[str, object] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if target is None:
        _quiet()
        ray.init(address=LOCAL, **options)  # type: ignore[arg-type]
        return
    if target.startswith(("http://", "https://")):
        raise BadConfigError(
            f"Ray address {target} from {source} is a dashboard (job submission) address: submit the command with "
            f"`ray job submit --address {target} -- batchjobs ...`, or {_WHAT_TO_DO}"
        )
    host, port = _host_port(target, source)
    if not wait_for_port(host, port, timeout_s=timeout_s):
        raise BadConfigError(f"no Ray cluster answers at {target} (from {source}) after {timeout_s:g} s; {_WHAT_TO_DO}")
    _quiet()
    env = forwarded_env()
    if env:
        options["runtime_env"] = {"env_vars": env}
    from ray.exceptions import AuthenticationError

    try:
        ray.init(address=target, **options)  # type: ignore[arg-type]
    except AuthenticationError:
        raise BadConfigError(
            f"the Ray cluster at {target} (from {source}) wants its token: set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN (the head's ~/.ray/auth_token), or submit with `ray job submit`"
        ) from None
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadConfigError(
            f"cannot join the Ray cluster at {target} (from {source}): {first}; {_WHAT_TO_DO}"
        ) from None


__all__ = ["DEFAULT_TIMEOUT_S", "LOCAL", "connect", "forwarded_env", "resolve_address", "wait_for_port"]
