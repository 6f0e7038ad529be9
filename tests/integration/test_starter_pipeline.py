"""The real starter model through the whole pipeline once: train → MLflow champion → backfill."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.generate import GenerateConfig, generate_backlog
from pipelines.lake import open_lake
from pipelines.policy import load_default_pack
from tests.integration.helpers import read, run_ok


def test_starter_model_trains_registers_and_backfills(ray_cluster: str, tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    generate_backlog(lake, GenerateConfig(rows=200, seed=5, bad_rows=11, enrich=10))
    out = run_ok("train", "--lake", lake.root, "--epochs", "1")
    assert "champion" in out
    out = run_ok("backfill", "--lake", lake.root, ray_address=ray_cluster)  # default: models:/starter@champion
    assert "model starter/1" in out
    scores = read(lake, "scores")
    truth = pl.read_delta(lake.path("ground_truth"))
    # Policies the model scores: a policy decided by hash banks alone (terrorist_content) has no score.
    policies = [p.id for p in load_default_pack().policies if p.head is not None]
    assert set(scores["content_id"].unique().to_list()) == set(truth["content_id"].unique().to_list())
    assert scores.height == truth["content_id"].n_unique() * len(policies)
    assert scores["score"].is_between(0, 1).all()
    assert set(scores["model_name"].unique().to_list()) == {"starter"}
    dead = read(lake, "dead_letters")
    assert dead.height == 11
