"""Jobs on a real Ray cluster: `ray start --head` on loopback, token auth, `ray job submit`.

The cluster has its own temp dir and ports, so it never meets the integration tier's shared
local Ray (tests/integration/conftest.py, which uses Ray's default temp dir and random ports).
Its processes are stopped by pid, never with `ray stop` (which stops every Ray on the machine).
The lake is on S3 (an S3 server on loopback): the AWS variables and the MLflow tracking URI
reach the jobs only through `--runtime-env-json`, never through the environment `ray start`
had. Afterwards the dead cluster's record stays behind, as after a crash, and a job that
finds it fails in bounded time with one line instead of retrying for minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import Lake, open_lake
from tests.integration.helpers import descendants
from tests.integration.s3_server import bucket_keys, free_port, moto_s3, s3_env

BUCKET = "trustbatch-cluster"
RAY = str(Path(sys.executable).parent / "ray")


@dataclass
class Head:
    base: Path  # RAY_TMPDIR for this cluster: its record is base/ray/ray_current_cluster
    address: str  # GCS address, as `ray start` recorded it
    dashboard: str  # job submission address
    env: dict[str, str]  # token auth; no AWS_* / MLFLOW_* variables


def _cluster_pids(temp_dir: Path) -> set[int]:
    """The processes `ray start` left for this temp dir (they name it on their command line), and their children."""
    roots: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(temp_dir) in cmd:
            roots.add(int(entry.name))
    found = set(roots)
    for pid in roots:
        found.update(descendants(pid))
    return found


def _stop(temp_dir: Path) -> None:
    pids = _cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        if not pids:
            return


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    # A short temp dir: Ray's unix socket paths under it must stay below 108 characters.
    base = Path(tempfile.mkdtemp(prefix="tb-ray-", dir="/tmp"))
    temp_dir = base / "ray"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "RAY_", "TRITON_"))}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    gcs, dashboard = free_port(), free_port()
    ports = {
        "--port": gcs,
        "--dashboard-port": dashboard,
        "--ray-client-server-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    cmd = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1"]
    cmd += ["--include-dashboard", "true", "--temp-dir", str(temp_dir), "--num-cpus", "2", "--disable-usage-stats"]
    cmd += [a for flag, port in ports.items() for a in (flag, str(port))]
    cmd += ["--min-worker-port", "0", "--max-worker-port", "0"]  # workers on ports the OS picks
    try:
        proc = subprocess.run(cmd, env=env, cwd=base, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"ray start --head failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        address = (temp_dir / "ray_current_cluster").read_text().strip()
        yield Head(base, address, f"http://127.0.0.1:{dashboard}", env)
    finally:
        _stop(temp_dir)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_lake(head: Head) -> Iterator[tuple[Lake, dict[str, str]]]:
    """A generated S3 lake with the tiny model registered; yields it and the job's runtime env variables."""
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.model import TinyModel, register_model

    with moto_s3(head.base / "moto.log", buckets=(BUCKET,)) as endpoint:
        tracking = f"sqlite:///{head.base}/mlflow.db"
        lake = open_lake(f"s3://{BUCKET}/lake", tracking_uri=tracking)
        generate_backlog(lake, GenerateConfig(rows=120, seed=4, bad_rows=2, enrich=5))
        register_model(TinyModel(), lake=lake, name="tiny", promote=True)
        yield lake, {**s3_env(endpoint), "MLFLOW_TRACKING_URI": tracking}


def _submit(head: Head, *args: str, env_vars: dict[str, str] | None = None, timeout: float = 600) -> str:
    cmd = [RAY, "job", "submit", "--address", head.dashboard]
    if env_vars:
        cmd += ["--runtime-env-json", json.dumps({"env_vars": env_vars})]
    cmd += ["--", sys.executable, "-m", "batchjobs", *args]
    proc = subprocess.run(cmd, env=head.env, cwd=head.base, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"ray job submit -- batchjobs {' '.join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    )
    return proc.stdout


def test_submission_without_the_token_is_refused(head: Head) -> None:
    env = {k: v for k, v in head.env.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(head.base)  # no ~/.ray/auth_token to fall back on
    proc = subprocess.run(
        [RAY, "job", "list", "--address", head.dashboard], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "token" in (proc.stdout + proc.stderr).lower()


def test_backfill_sweep_and_audit_as_jobs_on_an_s3_lake(head: Head, s3_lake: tuple[Lake, dict[str, str]]) -> None:
    lake, env_vars = s3_lake
    assert not any(k.startswith(("AWS_", "MLFLOW_")) for k in head.env)  # only the runtime env carries them
    out = _submit(head, "backfill", "--lake", lake.root, "--model", "models:/tiny@champion", env_vars=env_vars)
    assert "scored 120" in out and "dead-lettered 2" in out, out
    out = _submit(head, "sweep", "--lake", lake.root, "--policy", "election-eu", env_vars=env_vars)
    assert "report:" in out
    out = _submit(head, "audit", "--lake", lake.root, env_vars=env_vars)
    assert f"{lake.reports}/audit-" in out

    scores = pl.read_delta(lake.path("scores"))
    assert scores["content_id"].n_unique() == 120
    keys = bucket_keys(BUCKET, "lake/reports/")
    assert any("/sweep-" in k and k.endswith("index.html") for k in keys)
    assert any("/audit-" in k and k.endswith("report.json") for k in keys)
    assert not (head.base / "s3:").exists()


def test_a_dead_cluster_ends_the_job_with_one_line(head: Head) -> None:
    """Kill the head without `ray stop`: its record stays; a job that finds it exits in bounded time."""
    record = head.base / "ray" / "ray_current_cluster"
    _stop(head.base / "ray")
    assert record.read_text().strip() == head.address
    code = (
        "import sys\n"
        "from pipelines.errors import BadConfigError\n"
        "from pipelines.ray_connect import connect\n"
        "try:\n"
        "    connect(None, timeout_s=3)\n"
        "except BadConfigError as exc:\n"
        "    print(exc); sys.exit(2)\n"
    )
    env = {**head.env, "RAY_TMPDIR": str(head.base)}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60
    line = proc.stdout.strip()
    assert "\n" not in line and head.address in line and "--ray-address local" in line and "ray start --head" in line
