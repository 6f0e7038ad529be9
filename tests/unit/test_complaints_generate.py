"""The complaints generator: its files pass the ingest's checks, every restrictive decision can be
appealed, and outcomes follow ground truth (false positives are reversed more often)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.complaints import generate_complaints, ingest_complaints
from pipelines.errors import BadConfigError
from pipelines.sink import commit_once
from tests.unit.test_complaints_ingest import T0, commit_decisions, decision, synthetic_lake


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_generated_file_ingests(tmp_path: Path, suffix: str) -> None:
    lake = synthetic_lake(tmp_path / "lake")
    now = T0 + timedelta(days=30)
    out = generate_complaints(lake, str(tmp_path / f"c{suffix}"), appeal_share=1.0, notice_share=0.0, now=now)
    assert out.complaints == 3  # a/DE remove, a/FR demote, c/FR label
    summary = ingest_complaints(lake, out.path, now=now)
    assert summary.complaints == 3


def test_false_positives_are_reversed_more_often(tmp_path: Path) -> None:
    lake = synthetic_lake(tmp_path / "lake")
    rows = [decision(f"x{i}", "DE", "hate", "remove", T0) for i in range(400)]
    commit_decisions(lake, rows, "many")
    truth = pl.DataFrame(
        {
            "content_id": [f"x{i}" for i in range(400)], "policy_id": ["hate"] * 400,
            "label": [i % 2 == 0 for i in range(400)], "family": ["f"] * 400, "signal": ["text"] * 400,
            "split": ["train"] * 400,
        }
    )  # fmt: skip
    commit_once(lake, "ground_truth", truth.to_arrow(), app_id="truth")
    now = datetime(2026, 3, 1, tzinfo=UTC)
    out = generate_complaints(lake, str(tmp_path / "c.csv"), appeal_share=1.0, seed=4, now=now)
    frame = pl.read_csv(out.path).join(truth.select("content_id", "label"), on="content_id")
    reversed_share = frame.group_by("label").agg((pl.col("outcome") == "reversed").mean().alias("r"))
    share = dict(zip(reversed_share["label"], reversed_share["r"], strict=True))
    assert share[False] > 0.4 > 0.15 > share[True]
    assert (frame["lodged_at"] < frame["resolved_at"].fill_null("9")).all()


def test_shares_are_checked(tmp_path: Path) -> None:
    lake = synthetic_lake(tmp_path / "lake")
    with pytest.raises(BadConfigError, match="appeal_share must be in"):
        generate_complaints(lake, str(tmp_path / "c.csv"), appeal_share=1.5)
