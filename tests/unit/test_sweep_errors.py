"""Sweep errors a user can cause: each is one line, names what is wrong and what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchjobs.cli import main
from pipelines.errors import BadConfigError
from pipelines.lake import open_lake
from pipelines.sweep import SweepConfig


def test_unknown_market_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match=r"--market XX: unknown market or group"):
        SweepConfig(lake=open_lake(str(tmp_path)), policy="election-eu", markets=("DE", "XX"))


def test_groups_expand_to_member_markets(tmp_path: Path) -> None:
    config = SweepConfig(lake=open_lake(str(tmp_path)), policy="election-eu", markets=("EEA", "US"))
    assert len(config.market_codes) == 31 and "NO" in config.market_codes and "US" in config.market_codes


def test_since_after_until_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadConfigError, match="must be before --until"):
        SweepConfig(
            lake=open_lake(str(tmp_path)),
            policy="election-eu",
            since=datetime(2026, 5, 1, tzinfo=UTC),
            until=datetime(2026, 4, 1, tzinfo=UTC),
        )


def test_sweep_before_any_backfill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--lake", str(tmp_path / "lake"), "--policy", "election-eu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no scores/decisions yet; run 'batchjobs backfill' before sweeping" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_pack_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "bad.yaml"
    pack.write_text("pack_id: x\nversion: [\n")
    code = main(["sweep", "--lake", str(tmp_path / "lake"), "--policy", str(pack)])
    err = capsys.readouterr().err
    assert code == 2 and "bad.yaml" in err and "Traceback" not in err
