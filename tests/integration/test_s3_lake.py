"""A lake on object storage: every command against ``s3://bucket/prefix`` on an S3 server on loopback.

``moto_server`` (from the ``moto[server]`` test dependency) plays S3 on 127.0.0.1. The jobs get
their credentials and endpoint only from the standard AWS variables, and their MLflow store
from ``--tracking-uri`` (sqlite cannot live on S3). Nothing may land in a local folder named
``s3:``: the tables, the model artifacts and the reports are all in the bucket.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from pipelines import storage
from pipelines.lake import Lake, ensure_table, open_lake
from tests.integration.s3_server import bucket_keys, moto_s3

BUCKET = "trustbatch-it"
# Jobs get the S3 endpoint from AWS_ENDPOINT_URL alone (MLFLOW_S3_ENDPOINT_URL is this process's own).
_NOT_PASSED = ("TRITON_INTERPRET", "RAY_ADDRESS", "MLFLOW_S3_ENDPOINT_URL")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log", buckets=(BUCKET,)) as endpoint:
        yield endpoint


def _keys(prefix: str) -> list[str]:
    return bucket_keys(BUCKET, prefix)


@dataclass
class S3Run:
    lake: Lake
    workdir: Path
    tracking: str
    outputs: dict[str, str]


def _cli(workdir: Path, *args: str, ray_address: str | None = None, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    proc = subprocess.run(
        [sys.executable, "-m", "batchjobs", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"batchjobs {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def s3_run(s3_endpoint: str, ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> S3Run:
    """generate -> train (small) -> backfill -> sweep -> review sample/ingest -> audit, all on s3://."""
    workdir = tmp_path_factory.mktemp("s3-cwd")  # the jobs' working directory: must stay empty
    tracking = f"sqlite:///{tmp_path_factory.mktemp('s3-mlflow')}/mlflow.db"
    root = f"s3://{BUCKET}/lakes/t14"
    lake_args = ["--lake", root, "--tracking-uri", tracking]
    out = {
        "generate": _cli(workdir, "generate", *lake_args, "--rows", "60", "--bad-rows", "3", "--enrich", "10"),
        "train": _cli(workdir, "train", *lake_args, "--epochs", "1", "--max-rows", "40", "--max-heldout-rows", "20"),
        # The tier's shared Ray was started without the AWS variables: the job's driver forwards
        # them (and the tracking URI) to its workers through the runtime env (pipelines.ray_connect).
        "backfill": _cli(workdir, "backfill", *lake_args, ray_address=ray_cluster),
        "sweep": _cli(workdir, "sweep", *lake_args, "--policy", "election-eu"),
        "sample": _cli(workdir, "review", "sample", *lake_args, "--per-stratum", "5"),
        "ingest": _cli(workdir, "review", "ingest", *lake_args, "--from-ground-truth"),
        "audit": _cli(workdir, "audit", *lake_args),
    }
    return S3Run(open_lake(root, create=False, tracking_uri=tracking), workdir, tracking, out)


def test_tables_models_and_reports_are_in_the_bucket_and_nothing_is_local(s3_run: S3Run) -> None:
    prefix = "lakes/t14/"
    keys = _keys(prefix)
    for table in ("backlog", "ground_truth", "scores", "decisions", "dead_letters", "policy_packs", "review_samples"):
        assert any(k.startswith(f"{prefix}{table}/_delta_log/") for k in keys), (
            f"no Delta log for {table} in the bucket"
        )
    assert any(k.startswith(f"{prefix}mlartifacts/") and k.endswith("/model/model.json") for k in keys)
    sweep_reports = {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"{prefix}reports/sweep-")}
    assert {"summary.parquet", "transitions.parquet", "report.json", "index.html"} <= sweep_reports
    audit_reports = {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"{prefix}reports/audit-")}
    assert {"report.parquet", "report.json", "index.html", "statements_of_reasons.jsonl"} <= audit_reports
    # The jobs ran in workdir: no 's3:' folder, no mlflow.db, no mlartifacts there.
    assert list(s3_run.workdir.iterdir()) == []
    assert "s3://trustbatch-it/lakes/t14/reports/audit-" in s3_run.outputs["audit"]
    assert "s3://trustbatch-it/lakes/t14/reports/sweep-" in s3_run.outputs["sweep"]


def test_the_jobs_did_their_work_on_s3(s3_run: S3Run) -> None:
    lake = s3_run.lake
    scores = pl.read_delta(lake.path("scores"))
    decisions = pl.read_delta(lake.path("decisions"))
    assert scores.height > 0 and scores["model_name"].unique().to_list() == ["starter"]
    assert pl.read_delta(lake.path("dead_letters")).height == 3
    assert decisions.height > 0
    # The sweep ran on the bucket: its pack is recorded there beside the backfill's (it writes decision
    # rows only for changed decisions).
    assert pl.read_delta(lake.path("policy_packs"))["policy_version"].n_unique() == 2
    report = storage.read_bytes(f"{lake.reports}/{_only_report(lake, 'audit-')}/report.json")
    assert b"trustbatch compliance audit" in report
    # The model registered by `train` is in the tracking store, its artifacts in the bucket.
    from mlflow import MlflowClient

    mv = MlflowClient(tracking_uri=s3_run.tracking).get_model_version_by_alias("starter", "champion")
    assert str(mv.source).startswith(f"{lake.artifacts_uri}/")


def _only_report(lake: Lake, kind: str) -> str:
    prefix = f"{lake.root.removeprefix(f's3://{BUCKET}/')}/reports/"
    names = {k.removeprefix(prefix).split("/", 1)[0] for k in _keys(prefix)}
    (name,) = [n for n in names if n.startswith(kind)]
    return name


def test_daft_reads_the_same_rows_as_polars(s3_run: S3Run) -> None:
    # In its own process: with Ray initialised (the tier's shared Ray) Daft would run on Ray's
    # workers, which do not have this test's AWS variables.
    code = (
        "import sys, daft\n"
        "from daft.io import IOConfig, S3Config\n"
        # Daft reads the AWS variables too, but needs use_ssl=False said explicitly for plain http.
        "io = IOConfig(s3=S3Config.from_env().replace(use_ssl=False))\n"
        "print(' '.join(str(daft.read_deltalake(u, io_config=io).count_rows()) for u in sys.argv[1:]))\n"
    )
    uris = [s3_run.lake.path(t) for t in ("scores", "decisions", "backlog")]
    proc = subprocess.run([sys.executable, "-c", code, *uris], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    daft_counts = [int(n) for n in proc.stdout.split()]
    polars_counts = [pl.scan_delta(u).select(pl.len()).collect().item() for u in uris]
    assert daft_counts == polars_counts


def test_serve_scores_and_logs_decisions_to_the_s3_lake(s3_run: S3Run) -> None:
    """`batchjobs serve --lake s3://...`: the replica loads the model from the bucket, decisions go back to it."""
    import json
    import signal
    import time
    import urllib.request

    from pipelines.model import TinyModel, register_model
    from tests.integration.helpers import descendants
    from tests.integration.s3_server import free_port

    lake = s3_run.lake
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
    args = ["serve", "--lake", lake.root, "--tracking-uri", s3_run.tracking, "--model", "models:/tiny@champion"]
    args += ["--insecure-no-auth", "--port", str(port), "--log-decisions", "--log-max-seconds", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchjobs", *args, "--ray-address", "local"],
        cwd=s3_run.workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    item = {"content_id": "s3-serve-1", "region": "DE", "markets": ["DE", "FR"], "content_type": "TEXT", "text": "hi"}
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(1)
        req = urllib.request.Request(f"{url}/v1/score", data=json.dumps(item).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
        assert body["model"] == {"name": "tiny", "version": "1"}
        time.sleep(3)  # the decision log commits every second
    finally:
        tree = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # serve's clean stop (what `ray job stop` sends)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid, *tree]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.communicate()
    logged = pl.read_delta(lake.path("decisions")).filter(pl.col("content_id") == "s3-serve-1")
    assert sorted(logged["market"].unique().to_list()) == ["DE", "FR"]
    assert list(s3_run.workdir.iterdir()) == []


def test_storage_writes_reads_and_checks_objects_on_s3(s3_endpoint: str) -> None:
    base = f"s3://{BUCKET}/storage"
    assert not storage.exists(f"{base}/r/a.json")
    storage.makedirs(f"{base}/r")  # no folders on S3: nothing is created
    assert _keys("storage/") == []
    storage.write_text(f"{base}/r/a.json", '{"ok": true}')
    assert storage.exists(f"{base}/r/a.json") and storage.exists(f"{base}/r")
    assert storage.read_bytes(f"{base}/r/a.json") == b'{"ok": true}'
    with storage.staged_dir(f"{base}/staged") as folder:
        (folder / "x.parquet").write_bytes(b"PAR1")
        (folder / "sub").mkdir()
        (folder / "sub" / "y.txt").write_text("y")
    assert sorted(_keys("storage/")) == ["storage/r/a.json", "storage/staged/sub/y.txt", "storage/staged/x.parquet"]


def test_two_writers_pinned_to_one_version_on_s3_second_fails(s3_endpoint: str) -> None:
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    lake = open_lake(f"s3://{BUCKET}/lakes/writers", create=False)
    uri = ensure_table(lake, "policy_packs")
    first = DeltaTable(uri, storage_options=lake.storage_options)
    second = DeltaTable(uri, storage_options=lake.storage_options)
    assert first.version() == second.version() == 0
    no_rebase = CommitProperties(max_commit_retries=0)
    write_deltalake(first, _pack_row("a"), mode="append", commit_properties=no_rebase)
    with pytest.raises(CommitFailedError):
        write_deltalake(second, _pack_row("b"), mode="append", commit_properties=no_rebase)
    assert DeltaTable(uri).version() == 1
    assert pl.read_delta(uri)["pack_id"].to_list() == ["a"]


def test_sink_retries_a_commit_that_lost_the_race_on_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink's first attempt is made on a snapshot another writer has moved past: S3 refuses it, the retry lands."""
    import deltalake
    from deltalake import DeltaTable

    from pipelines.sink import commit_once

    lake = open_lake(f"s3://{BUCKET}/lakes/sink", create=False)
    uri = ensure_table(lake, "policy_packs")
    stale = DeltaTable(uri, storage_options=lake.storage_options)  # pinned at version 0
    one, two = _pack_row("a"), _pack_row("b")
    assert commit_once(lake, "policy_packs", one, app_id="writer-a")  # version 1

    calls: list[int] = []
    real = deltalake.DeltaTable

    class FirstStale(real):  # type: ignore[misc,valid-type]
        """DeltaTable whose first construction returns the stale snapshot (class methods unchanged)."""

        def __new__(cls, *args: object, **kwargs: object) -> DeltaTable:  # type: ignore[misc]
            calls.append(1)
            return stale if len(calls) == 1 else real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deltalake, "DeltaTable", FirstStale)
    assert commit_once(lake, "policy_packs", two, app_id="writer-b")
    monkeypatch.undo()
    assert len(calls) >= 2  # the stale attempt failed and was retried on a fresh snapshot
    final = real(uri)
    assert final.version() == 2
    assert sorted(pl.read_delta(uri)["policy_version"].to_list()) == ["a@1", "b@1"]


def _pack_row(name: str) -> pa.Table:
    from datetime import UTC, datetime

    from pipelines.schema import TABLES

    row = {
        "pack_id": name,
        "version": "1",
        "policy_version": f"{name}@1",
        "sha256": name * 64,
        "text": "",
        "first_used_at": datetime(2026, 12, 1, tzinfo=UTC),
        "first_run_id": "test",
    }
    return pa.Table.from_pylist([row], schema=TABLES["policy_packs"])
