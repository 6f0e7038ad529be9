"""The exactly-once sink against real Delta tables on disk."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from pipelines.lake import open_lake
from pipelines.schema import DEAD_LETTERS
from pipelines.sink import SeenKeys, commit_once


def _dead(ids: list[str], model_version: str = "1") -> pa.Table:
    n = len(ids)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "content_id": ids,
            "locator": ids,
            "run_id": ["r"] * n,
            "stage": ["preprocess"] * n,
            "error_class": ["X"] * n,
            "message": ["m"] * n,
            "model_version": [model_version] * n,
            "source_version": [0] * n,
            "failed_at": [now] * n,
            "chunk_id": [0] * n,
            "source_file": [None] * n,
            "source_row": [None] * n,
        },
        schema=DEAD_LETTERS,
    )


def _read(path: str) -> pl.DataFrame:
    return pl.read_delta(path)


def test_repeated_transaction_is_skipped(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    assert commit_once(lake, "dead_letters", _dead(["a", "b"]), app_id="job/0") is True
    # deltalake itself would append these rows again; the sink must not.
    assert commit_once(lake, "dead_letters", _dead(["a", "b"]), app_id="job/0") is False
    assert sorted(_read(lake.path("dead_letters"))["content_id"].to_list()) == ["a", "b"]


def test_commit_metadata_and_retention(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    lake = open_lake(str(tmp_path / "lake"), retention_days=400)
    commit_once(lake, "dead_letters", _dead(["a"]), app_id="job/0", metadata={"run_id": "r1"})
    dt = DeltaTable(lake.path("dead_letters"))
    last = dt.history(1)[0]
    assert last["run_id"] == "r1" and last["app_id"] == "job/0"
    config = dt.metadata().configuration
    assert config["delta.logRetentionDuration"] == "interval 400 days"
    assert config["delta.deletedFileRetentionDuration"] == "interval 400 days"


def test_dedup_drops_rows_committed_by_another_job(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    commit_once(lake, "dead_letters", _dead(["a", "b"]), app_id="other-job/0")
    seen = SeenKeys(("locator",), {"model_version": "1"})
    commit_once(lake, "dead_letters", _dead(["b", "c"]), app_id="job/0", dedup=seen)
    # A different model version is a different key space: its rows stay.
    commit_once(
        lake, "dead_letters", _dead(["a"], "2"), app_id="job/1", dedup=SeenKeys(("locator",), {"model_version": "2"})
    )
    got = _read(lake.path("dead_letters")).sort("content_id", "model_version")
    assert got.select("content_id", "model_version").rows() == [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")]


def _racer(root: str, worker: int, barrier: mp.synchronize.Barrier) -> None:  # type: ignore[name-defined]
    lake = open_lake(root)
    seen = SeenKeys(("locator",), {"model_version": "1"})
    barrier.wait()
    for chunk in range(6):
        # Every worker commits the same chunks: identical transactions AND overlapping keys.
        ids = [f"c{chunk}-{i}" for i in range(3)] + [f"shared-{chunk % 2}"]
        commit_once(lake, "dead_letters", _dead(ids), app_id=f"job-{worker % 2}/{chunk}", dedup=seen)


def test_concurrent_writers_commit_each_key_once(tmp_path: Path) -> None:
    root = str(tmp_path / "lake")
    lake = open_lake(root)
    commit_once(lake, "dead_letters", _dead(["seed"]), app_id="seed")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_racer, args=(root, w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = _read(lake.path("dead_letters"))
    assert got.height == got["locator"].n_unique()
    assert got.height == 1 + 6 * 3 + 2


def test_unwritable_lake_is_a_one_line_error(tmp_path: Path) -> None:
    from pipelines.errors import BadConfigError

    # Root ignores permission bits (CI runs as root): a regular file in the path is what
    # makes the folder impossible to create for anyone.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(BadConfigError, match=r"--lake .*: cannot create the folder"):
        open_lake(str(blocker / "lake"))
