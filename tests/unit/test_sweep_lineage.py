"""Pass 1 of a sweep from the Delta log: used only when the log settles the lineage, and then the
same answer as reading the decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from deltalake import write_deltalake

from pipelines.sweep.buckets import behind_bucket, merge_counts
from pipelines.sweep.lineage import counts_from_log


def _rows(n: int, version: str = "pack@1", model: str = "starter", model_version: str | None = "1") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "content_id": [f"c{i:05d}" for i in range(n)],
            "market": ["DE"] * n,
            "policy_id": ["hate"] * n,
            "policy_version": [version] * n,
            "action": ["none"] * n,
            "model_name": [model] * n,
            "model_version": pl.Series([model_version] * n, dtype=pl.String),
            "decided_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
            "run_id": ["r1"] * n,
            "source": ["model"] * n,
        }
    )


def _table(tmp_path: Path, *frames: pl.DataFrame) -> str:
    uri = str(tmp_path / "decisions")
    for f in frames:
        write_deltalake(uri, f.to_arrow(), mode="append")
    return uri


def test_one_lineage_across_commits_is_read_from_the_log(tmp_path: Path) -> None:
    a, b = _rows(30), _rows(50).with_columns(pl.col("content_id") + "b")
    uri = _table(tmp_path, a, b)
    got = counts_from_log(uri, 1)
    assert got is not None
    assert got.to_dicts() == [{"policy_version": "pack@1", "model_name": "starter", "model_version": "1", "n": 80}]
    # The same lineage as pass 1 over the rows.
    read = merge_counts([behind_bucket(pl.concat([a, b]))])
    assert read.select("policy_version", "model_name", "model_version").row(0) == got.drop("n").row(0)
    # Pinned: version 0 holds only the first commit.
    first = counts_from_log(uri, 0)
    assert first is not None and first["n"].to_list() == [30]


def test_several_lineages_or_unsure_statistics_fall_back_to_reading(tmp_path: Path) -> None:
    # A second pack version (a sweep happened): which rows are current needs the rows.
    assert counts_from_log(_table(tmp_path / "a", _rows(10), _rows(10, version="pack@2")), 1) is None
    # Two lineages inside one file.
    assert counts_from_log(_table(tmp_path / "b", pl.concat([_rows(5), _rows(5, model="other")])), 0) is None
    # A null model version.
    assert counts_from_log(_table(tmp_path / "c", _rows(5, model_version=None)), 0) is None
    # A version as long as the statistics' prefix: its statistic may be cut, so it is not trusted.
    assert counts_from_log(_table(tmp_path / "d", _rows(5, version="p" * 40)), 0) is None
