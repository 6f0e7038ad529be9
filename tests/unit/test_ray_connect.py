"""pipelines.ray_connect without starting Ray: address resolution, dead clusters, forwarded variables."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import ray_connect
from pipelines.errors import BadConfigError


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("RAY_ADDRESS", ray_connect._JOB_CONFIG_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # never read the machine's /tmp/ray
    import ray

    # Whatever else ran in this process (a shared Ray of the integration tier), connect() must get
    # past its "already initialised" check; ray.init itself raises in this tier.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    return tmp_path


def _record(tmp_path: Path, address: str) -> Path:
    (tmp_path / "ray").mkdir(exist_ok=True)
    record = tmp_path / "ray" / "ray_current_cluster"
    record.write_text(address + "\n")
    return record


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert ray_connect.resolve_address(None)[0] is None  # nothing configured: a local Ray
    record = _record(tmp_path, "10.1.2.3:6379")
    assert ray_connect.resolve_address(None) == ("10.1.2.3:6379", f"{record}, left by `ray start`")
    monkeypatch.setenv("RAY_ADDRESS", "10.9.9.9:6380")
    assert ray_connect.resolve_address(None)[0] == "10.9.9.9:6380"
    assert ray_connect.resolve_address("10.0.0.1:1234") == ("10.0.0.1:1234", "--ray-address 10.0.0.1:1234")
    # The commands' --ray-address defaults to $RAY_ADDRESS: the message names the variable.
    assert ray_connect.resolve_address("10.9.9.9:6380") == ("10.9.9.9:6380", "RAY_ADDRESS=10.9.9.9:6380")
    # "local" ignores both the environment and the recorded cluster.
    assert ray_connect.resolve_address("local")[0] is None


def test_auto_without_any_cluster_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="no running Ray cluster"):
        ray_connect.resolve_address("auto")
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    with pytest.raises(BadConfigError, match="no running Ray cluster"):
        ray_connect.resolve_address(None)
    _record(tmp_path, "10.1.2.3:6379")
    assert ray_connect.resolve_address(None)[0] == "10.1.2.3:6379"


@pytest.mark.parametrize("how", ["argument", "RAY_ADDRESS", "record"])
def test_dead_cluster_fails_fast_with_one_line(how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    address = f"127.0.0.1:{_dead_port()}"
    arg = address if how == "argument" else None
    if how == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    elif how == "record":
        _record(tmp_path, address)
    t0 = time.monotonic()
    with pytest.raises(BadConfigError) as err:
        ray_connect.connect(arg, timeout_s=1.5)  # tests/unit: ray.init raises if it is ever reached
    assert time.monotonic() - t0 < 10
    message = str(err.value)
    assert "\n" not in message
    assert f"no Ray cluster answers at {address}" in message
    assert "--ray-address local" in message and "ray start --head" in message
    if how == "record":
        assert "ray_current_cluster" in message


def test_dashboard_address_says_to_use_ray_job_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(BadConfigError, match=re.escape("ray job submit --address http://127.0.0.1:8265")):
        ray_connect.connect(None, timeout_s=1)


def test_malformed_address() -> None:
    with pytest.raises(BadConfigError, match="is not HOST:PORT"):
        ray_connect.connect("nohost", timeout_s=1)


def test_forwarded_env_skips_what_the_submitted_job_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_ENDPOINT_URL": "http://s3",
        "MLFLOW_TRACKING_URI": "sqlite:///x",
        "HOME": "/h",
    }
    assert ray_connect.forwarded_env(environ) == {k: v for k, v in environ.items() if k != "HOME"}
    job = {"runtime_env": {"env_vars": {"AWS_ACCESS_KEY_ID": "k"}}}
    monkeypatch.setenv(ray_connect._JOB_CONFIG_ENV, json.dumps(job))
    assert "AWS_ACCESS_KEY_ID" not in ray_connect.forwarded_env(environ)
    assert "AWS_ENDPOINT_URL" in ray_connect.forwarded_env(environ)


def test_a_dead_recorded_cluster_ends_a_real_process_within_the_timeout(tmp_path: Path) -> None:
    """As after `ray start --head` died without `ray stop`: the process exits, no Ray retries for minutes."""
    address = f"127.0.0.1:{_dead_port()}"
    _record(tmp_path, address)
    code = (
        "import sys\n"
        "from pipelines.errors import BadConfigError\n"
        "from pipelines.ray_connect import connect\n"
        "try:\n"
        "    connect(None, timeout_s=2)\n"
        "except BadConfigError as exc:\n"
        "    print(exc); sys.exit(2)\n"
        "sys.exit(0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(tmp_path)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 30
    assert address in proc.stdout and "--ray-address local" in proc.stdout
    assert "Failed to connect to GCS" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "--lake", "L", "--ray-address", "local"],
        ["sweep", "--lake", "L", "--policy", "p", "--ray-address", "local"],
        ["review", "sample", "--lake", "L", "--per-stratum", "3", "--ray-address", "local"],
    ],
)
def test_pass_commands_take_ray_address_as_the_dead_cluster_message_says(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-line dead-cluster error tells users to pass --ray-address local: every command with Ray
    passes accepts it and makes it the address its passes join."""
    from batchjobs.cli import build_parser
    from batchjobs.commands._common import use_ray_address

    args = build_parser().parse_args(argv)
    assert args.ray_address == "local"
    monkeypatch.setenv("RAY_ADDRESS", "unset-at-teardown")  # the command's setting must not leak
    use_ray_address(args)
    assert os.environ["RAY_ADDRESS"] == "local"
    assert ray_connect.resolve_address(None) == (None, "RAY_ADDRESS=local")
    assert "--ray-address local" in ray_connect._WHAT_TO_DO
