"""policy_packs: the first use of a version is recorded once; a changed text is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import BadConfigError
from pipelines.lake import open_lake
from pipelines.policy import load_default_pack, load_pack, record_pack, recorded


def test_first_use_records_text_and_hash_once(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    pack = load_default_pack()
    assert record_pack(lake, pack, run_id="run-1") is True
    assert record_pack(lake, pack, run_id="run-2") is False
    assert record_pack(lake, load_pack("election-eu"), run_id="run-3") is True
    rows = pl.read_delta(lake.path("policy_packs")).sort("version")
    assert rows["policy_version"].to_list() == ["trustbatch-default@1.2.0", "trustbatch-default@1.3.0"]
    first = recorded(lake, pack.policy_version)
    assert first is not None
    assert first["sha256"] == pack.sha256 and first["text"] == pack.text and first["first_run_id"] == "run-1"


def test_same_version_with_other_content_is_an_error(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    pack = load_default_pack()
    record_pack(lake, pack, run_id="run-1")
    edited = dataclasses.replace(pack, text=pack.text + "# edited\n", sha256="0" * 64)
    with pytest.raises(BadConfigError) as info:
        record_pack(lake, edited, run_id="run-2")
    message = str(info.value)
    assert "version trustbatch-default@1.2.0 was first used on" in message
    assert f"with different content (sha256 {pack.sha256}; this file: {'0' * 64})" in message
    assert message.endswith("A used pack version is immutable: give the changed pack a new version")


def test_nothing_recorded_in_a_new_lake(tmp_path: Path) -> None:
    assert recorded(open_lake(str(tmp_path / "lake")), "x@1") is None
