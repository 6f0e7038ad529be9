"""Sweeps on real Delta tables: equal to a fresh backfill, reconciled reports, kill-safe."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import Lake
from pipelines.sweep.current import current_decisions
from tests.integration.helpers import TINY_URI, batchjobs, copy_lake, delta_commits, make_lake, read, run_ok

KEY = ["content_id", "market", "policy_id"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return make_lake(tmp_path_factory.mktemp("sweep-pristine") / "lake", rows=1500, bad_rows=12, seed=11, enrich=3)


@pytest.fixture(scope="module")
def backfilled(pristine: Lake, ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = copy_lake(pristine, tmp_path_factory.mktemp("sweep-backfilled") / "lake")
    run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, ray_address=ray_cluster)
    return lake


@pytest.fixture(scope="module")
def swept(backfilled: Lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str]:
    lake = copy_lake(backfilled, tmp_path_factory.mktemp("swept") / "lake")
    out = run_ok("sweep", "--lake", lake.root, "--policy", "election-eu")
    return lake, out


def _current(lake: Lake) -> pl.DataFrame:
    return current_decisions(pl.scan_delta(lake.path("decisions"))).collect().sort(KEY)


def test_sweep_equals_fresh_backfill_with_the_new_pack(
    pristine: Lake, swept: tuple[Lake, str], ray_cluster: str, tmp_path: Path
) -> None:
    lake, _ = swept
    fresh = copy_lake(pristine, tmp_path / "fresh")
    run_ok("backfill", "--lake", fresh.root, "--model", TINY_URI, "--policy", "election-eu", ray_address=ray_cluster)
    got = _current(lake).select(*KEY, "action", "threshold", "automated")
    want = _current(fresh).select(*KEY, "action", "threshold", "automated")
    assert got.height == want.height
    assert got.equals(want)


def test_sweep_changes_only_what_the_pack_changed_and_keeps_old_rows(backfilled: Lake, swept: tuple[Lake, str]) -> None:
    lake, out = swept
    before, after = read(backfilled, "decisions"), read(lake, "decisions")
    new_rows = after.filter(pl.col("policy_version") == "trustbatch-default@1.3.0")
    assert new_rows.height > 0
    # Old rows stay for audit; only the misinformation policy is re-decided.
    assert after.height == before.height + new_rows.height
    assert set(new_rows["policy_id"].unique().to_list()) == {"misinformation"}
    assert new_rows["run_id"].null_count() == 0
    assert "newly restricted" in out


def test_report_reconciles_with_the_decisions_table(backfilled: Lake, swept: tuple[Lake, str]) -> None:
    lake, _ = swept
    report_dir = Path(lake.reports) / "sweep-trustbatch-default@1.2.0-trustbatch-default@1.3.0"
    summary = pl.read_parquet(report_dir / "summary.parquet")
    doc = json.loads((report_dir / "report.json").read_text())
    assert doc["re_decided_policies"] == ["misinformation"]
    old = _current(backfilled).filter(pl.col("policy_id") == "misinformation")
    new = _current(lake).filter(pl.col("policy_id") == "misinformation")
    joined = old.select(*KEY, pl.col("action").alias("o")).join(new.select(*KEY, pl.col("action").alias("n")), on=KEY)
    restrictive = ["label", "demote", "age_restrict", "remove"]
    for market in ("DE", "FR", "US"):
        row = summary.filter((pl.col("scope") == market) & (pl.col("policy_id") == "misinformation"))
        m = joined.filter(pl.col("market") == market)
        if m.height == 0:
            assert row.height == 0
            continue
        o, n = pl.col("o").is_in(restrictive), pl.col("n").is_in(restrictive)
        assert row["items"].item() == m.height
        assert row["cleared_to_actioned"].item() == m.filter(~o & n).height
        assert row["actioned_to_cleared"].item() == m.filter(o & ~n).height
        assert row["changed"].item() == m.filter(pl.col("o") != pl.col("n")).height
    # A US market is outside the EU override: nothing changes there.
    us = summary.filter((pl.col("scope") == "US") & (pl.col("policy_id") == "misinformation"))
    assert us.height == 0 or us["changed"].item() == 0
    assert (report_dir / "index.html").read_text().count("<svg") >= 1


def test_dry_run_writes_nothing(backfilled: Lake, tmp_path: Path) -> None:
    lake = copy_lake(backfilled, tmp_path / "lake")
    commits = delta_commits(lake, "decisions")
    out = run_ok("sweep", "--lake", lake.root, "--policy", "election-eu", "--dry-run")
    assert "would change" in out
    assert delta_commits(lake, "decisions") == commits
    assert not Path(lake.reports).exists()


def test_sweep_sigkilled_after_first_commit_then_rerun_is_exactly_once(
    backfilled: Lake, swept: tuple[Lake, str], tmp_path: Path
) -> None:
    lake = copy_lake(backfilled, tmp_path / "lake")
    commits = delta_commits(lake, "decisions")
    args = ("sweep", "--lake", lake.root, "--policy", "election-eu", "--chunk-rows", "150")
    proc = batchjobs(*args)
    deadline = time.monotonic() + 120
    while delta_commits(lake, "decisions") <= commits and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_ok(*args)
    after = read(lake, "decisions")
    key = [*KEY, "policy_version", "model_version"]
    assert after.select(key).is_duplicated().sum() == 0
    assert _current(lake).select(*KEY, "action").equals(_current(swept[0]).select(*KEY, "action"))


def test_unknown_head_is_refused_with_what_to_do(backfilled: Lake, tmp_path: Path) -> None:
    from pipelines.policy import resolve_pack

    text = resolve_pack("election-eu").read_text()
    text = text.replace('version: "1.3.0"', 'version: "9.0.0"').replace("head: misinformation", "head: deepfake", 1)
    pack = tmp_path / "new-head.yaml"
    pack.write_text(text)
    proc = batchjobs("sweep", "--lake", backfilled.root, "--policy", str(pack))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "deepfake" in err and "back-fill" in err and "Traceback" not in err


def test_sweep_on_ray_tasks_equals_the_local_sweep(
    backfilled: Lake, swept: tuple[Lake, str], ray_cluster: str, tmp_path: Path
) -> None:
    """Pass 2 on Ray tasks, submitted before the run exists (they get its id through the cluster's
    key-value store): the same decisions and report as the in-process sweep, every row naming the run."""
    from pipelines.sweep import SweepConfig, run_sweep

    lake = copy_lake(backfilled, tmp_path / "lake")
    result = run_sweep(SweepConfig(lake=lake, policy="election-eu", use_ray=True, buckets=3))
    cols = [*KEY, "action", "threshold", "automated"]
    assert _current(lake).select(cols).equals(_current(swept[0]).select(cols))
    new_rows = read(lake, "decisions").filter(pl.col("policy_version") == "trustbatch-default@1.3.0")
    assert new_rows.height == result.decisions_written > 0
    assert new_rows["run_id"].unique().to_list() == [result.run_id]
    name = "sweep-trustbatch-default@1.2.0-trustbatch-default@1.3.0"
    got = pl.read_parquet(Path(lake.reports) / name / "summary.parquet")
    assert got.equals(pl.read_parquet(Path(swept[0].reports) / name / "summary.parquet"))


def test_sweep_on_ray_whose_run_cannot_start_commits_nothing(
    backfilled: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    from dataclasses import replace

    from pipelines.sweep import SweepConfig, run_sweep

    lake = copy_lake(backfilled, tmp_path / "lake")
    commits = delta_commits(lake, "decisions")
    broken = replace(lake, tracking_uri="nosuchscheme://tracking")
    with pytest.raises(Exception, match="nosuchscheme"):
        run_sweep(SweepConfig(lake=broken, policy="election-eu", use_ray=True, buckets=3))
    # The tasks were running when the run failed to start: they stop before their commits.
    time.sleep(5)
    assert delta_commits(lake, "decisions") == commits
