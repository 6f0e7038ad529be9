"""Known material in generated lakes: bank files, near duplicates and look-alikes, ground truth, determinism."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.generate import GenerateConfig, generate_backlog
from pipelines.generate.known_rows import _ids, _rows, row_count
from pipelines.hashes import read_bank_csv
from pipelines.lake import open_lake


def test_known_rows_ids_match_rows_and_are_deterministic() -> None:
    cfg = GenerateConfig(rows=1, seed=4, known=2)
    rows = list(_rows(cfg))
    assert [(r["content_id"], f, b) for r, f, b in rows] == list(_ids(cfg))
    assert len(rows) == row_count(cfg) == 2 * 2 * 7
    again = list(_rows(cfg))
    assert [r["image"] for r, _, _ in rows] == [r["image"] for r, _, _ in again]
    assert all(r["content_type"] == "IMAGE" and r["image"] for r, _, _ in rows)


def test_generated_lake_with_known_material(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    summary = generate_backlog(lake, GenerateConfig(rows=30, seed=2, known=2, images_per_motif=4))
    assert summary.known_rows == 28 and set(summary.known_banks) == {"known_csam", "known_terror"}
    assert summary.positives["terrorist_content"] == 10
    bank = read_bank_csv(summary.known_banks["known_csam"])
    assert [e.external_id for e in bank.entries] == ["known-5-0", "known-5-1"]
    backlog = pl.read_delta(lake.path("backlog"))
    assert backlog.height == 30 + 28
    truth = pl.read_delta(lake.path("ground_truth"))
    known = truth.filter(pl.col("content_id").str.contains("-known-|-lookalike-"))
    assert known["content_id"].n_unique() == 28 and (known["split"] == "heldout").all()
    hashed = known.filter(pl.col("signal") == "hash")
    assert hashed.group_by("policy_id").len().sort("policy_id").rows() == [
        ("child_safety", 10),
        ("terrorist_content", 10),
    ]
    assert hashed["family"].str.starts_with("known_").all() and hashed["label"].all()
    looks = known.filter(pl.col("family") == "benign/known_lookalike")
    assert looks["content_id"].n_unique() == 8 and not looks["label"].any()
    # Without known material nothing changes: same digest, no extra rows, no terrorist_content target.
    assert GenerateConfig(rows=30, seed=2).digest() == GenerateConfig(rows=30, seed=2, known=0).digest()
