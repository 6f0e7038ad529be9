"""Review labels as decisions of record: a negative label lifts the item's restriction in every
market, a positive one confirms each market's automated action; a re-run adds nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from pipelines.audit.record import record_review_decisions
from pipelines.complaints import current_decisions
from pipelines.sink import commit_once
from tests.unit.test_complaints_ingest import T0, synthetic_lake


def test_labels_become_decisions_of_record(tmp_path: Path) -> None:
    lake = synthetic_lake(tmp_path / "lake")
    at = T0 + timedelta(days=1)
    labels = pl.DataFrame(
        {
            "sample_id": ["s1", "s2"], "content_id": ["a", "c"], "policy_id": ["hate", "scams"],
            "label": [False, True], "reviewer": ["r1", "r2"], "labeled_at": [at, at],
        }
    )  # fmt: skip
    commit_once(lake, "review_labels", labels.to_arrow(), app_id="labels")
    first = record_review_decisions(lake)
    assert first.committed and first.labels == 2 and first.decisions == 3  # a: DE + FR, c: FR
    assert not record_review_decisions(lake).committed
    rows = pl.read_delta(lake.path("decisions")).filter(pl.col("source") == "human_review")
    got = {
        (r["content_id"], r["market"]): (r["action"], r["run_id"], r["model_version"])
        for r in rows.iter_rows(named=True)
    }
    assert got == {
        ("a", "DE"): ("none", "review:s1", "r1"),
        ("a", "FR"): ("none", "review:s1", "r1"),
        ("c", "FR"): ("label", "review:s2", "r2"),
    }
    assert set(rows["automated"]) == {"NOT_AUTOMATED"}
    cur = current_decisions(pl.scan_delta(lake.path("decisions"))).collect()
    assert cur.filter(pl.col("content_id") == "a")["source"].unique().to_list() == ["human_review"]
