"""A lake is a folder or an object-store URI: where its MLflow store, artifacts and reports go."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from batchjobs.commands._common import add_lake, lake_from_args
from pipelines.errors import BadConfigError
from pipelines.lake import TRACKING_URI_ENV, Lake, open_lake


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)


def test_local_lake_keeps_its_own_sqlite_store_and_artifacts(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    assert lake.mlflow_uri == f"sqlite:///{(tmp_path / 'lake').resolve()}/mlflow.db"
    assert lake.artifacts_uri == (tmp_path / "lake" / "mlartifacts").resolve().as_uri()
    assert lake.reports == f"{tmp_path}/lake/reports"
    assert lake.storage_options == {}


def test_file_uri_lake_is_local(tmp_path: Path) -> None:
    lake = open_lake(f"file://{tmp_path}/lake")
    assert lake.is_local
    assert (tmp_path / "lake").is_dir()
    assert lake.mlflow_uri == f"sqlite:///{(tmp_path / 'lake').resolve()}/mlflow.db"


def test_local_lake_ignores_an_ambient_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:////elsewhere/mlflow.db")
    assert open_lake(str(tmp_path)).mlflow_uri.endswith(f"{tmp_path.resolve()}/mlflow.db")


def test_s3_lake_paths_stay_uris_and_nothing_is_created_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lake = open_lake("s3://bucket/prefix/", tracking_uri="sqlite:////tmp/x/mlflow.db")
    assert not lake.is_local
    assert lake.path("scores") == "s3://bucket/prefix/scores"
    assert lake.artifacts_uri == "s3://bucket/prefix/mlartifacts"
    assert lake.reports == "s3://bucket/prefix/reports"
    assert lake.mlflow_uri == "sqlite:////tmp/x/mlflow.db"
    assert lake.storage_options == {"conditional_put": "etag"}
    assert list(tmp_path.iterdir()) == []  # no local folder named 's3:'


def test_s3_lake_without_tracking_uri_says_what_to_pass() -> None:
    lake = open_lake("s3://bucket/prefix")
    with pytest.raises(BadConfigError) as err:
        _ = lake.mlflow_uri
    message = str(err.value)
    assert "\n" not in message
    assert "--tracking-uri" in message and TRACKING_URI_ENV in message and "s3://bucket/prefix" in message


def test_s3_lake_takes_the_tracking_uri_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACKING_URI_ENV, "http://mlflow:5000")
    # Workers rebuild the lake from its root alone: the environment must carry the store there.
    assert Lake("s3://bucket/prefix").mlflow_uri == "http://mlflow:5000"
    assert open_lake("s3://bucket/p", tracking_uri="sqlite:////a.db").mlflow_uri == "sqlite:////a.db"


def test_tracking_uri_flag_reaches_the_lake_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACKING_URI_ENV, "restored after the test")
    parser = argparse.ArgumentParser()
    add_lake(parser)
    args = parser.parse_args(["--lake", "s3://bucket/p", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    lake = lake_from_args(args, create=False)
    assert lake.mlflow_uri == f"sqlite:///{tmp_path}/m.db"
    import os

    assert os.environ[TRACKING_URI_ENV] == f"sqlite:///{tmp_path}/m.db"
    assert Lake("s3://bucket/p").mlflow_uri == f"sqlite:///{tmp_path}/m.db"


def test_every_lake_command_takes_tracking_uri() -> None:
    from batchjobs.cli import build_parser

    parser = build_parser()
    lake = ["--lake", "s3://b/p", "--tracking-uri", "sqlite:////t.db"]
    for argv in (
        ["generate", *lake, "--rows", "1"],
        ["train", *lake],
        ["backfill", *lake],
        ["sweep", *lake, "--policy", "default"],
        ["audit", *lake],
        ["review", "sample", *lake, "--per-stratum", "1"],
        ["review", "ingest", *lake, "--from-ground-truth"],
        ["serve", *lake],
        ["demo", *lake],
    ):
        assert parser.parse_args(argv).tracking_uri == "sqlite:////t.db", argv


def test_commands_that_record_runs_fail_before_any_work_without_a_tracking_uri(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchjobs.cli import main

    for argv in (
        ["train", "--lake", "s3://bucket/p"],
        ["backfill", "--lake", "s3://bucket/p"],
        ["sweep", "--lake", "s3://bucket/p", "--policy", "election-eu"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "--tracking-uri" in err, err
