"""`batchjobs compact`: fewer files, same rows at every version, transactions kept."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batchjobs.cli import main
from pipelines.compact import compact
from pipelines.lake import open_lake
from pipelines.sink import commit_once
from tests.unit.test_sink import _dead


def test_compaction_keeps_rows_versions_and_transactions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deltalake import DeltaTable

    lake = open_lake(str(tmp_path / "lake"))
    for unit in range(6):
        commit_once(lake, "dead_letters", _dead([f"c{unit}a", f"c{unit}b"]), app_id=f"job/dead_letters/{unit}")
    uri = lake.path("dead_letters")
    before_version = DeltaTable(uri).version()
    before = pl.read_delta(uri).sort("locator")
    assert main(["compact", "--lake", lake.root, "--table", "dead_letters"]) == 0
    assert "dead_letters: 6 -> 1 files" in capsys.readouterr().out
    dt = DeltaTable(uri)
    assert len(dt.file_uris()) == 1 and dt.version() == before_version + 1
    assert pl.read_delta(uri).sort("locator").equals(before)
    assert pl.read_delta(uri, version=before_version).sort("locator").equals(before)  # time travel
    # A unit committed before compaction is still recognised as committed.
    assert not commit_once(lake, "dead_letters", _dead(["c0a"]), app_id="job/dead_letters/0")
    assert compact(lake)[0].version is None  # nothing left to do


def test_unknown_table_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compact", "--lake", str(tmp_path), "--table", "backlog"])
    assert "invalid choice: 'backlog'" in capsys.readouterr().err
