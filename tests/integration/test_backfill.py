"""Backfill on a real local Ray into real Delta tables: completeness, idempotence, faults."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import Lake
from pipelines.policy import load_default_pack
from tests.integration.helpers import (
    TINY_URI,
    batchjobs,
    copy_lake,
    delta_commits,
    descendants,
    make_lake,
    read,
    run_ok,
)

ROWS, BAD = 3000, 30


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A generated lake nobody backfills: each test copies it."""
    return make_lake(tmp_path_factory.mktemp("pristine") / "lake", rows=ROWS, bad_rows=BAD)


@pytest.fixture(scope="module")
def reference(pristine: Lake, ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The same lake after one uninterrupted backfill."""
    lake = copy_lake(pristine, tmp_path_factory.mktemp("reference") / "lake")
    run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "500", ray_address=ray_cluster)
    return lake


def _keys(lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
    scores = read(lake, "scores").select("content_id", "policy_id", "model_version", "score")
    scores = scores.sort("content_id", "policy_id")
    decisions = (
        read(lake, "decisions")
        .select("content_id", "market", "policy_id", "policy_version", "model_version", "action")
        .sort("content_id", "market", "policy_id")
    )
    return scores, decisions


def _assert_exactly_once(lake: Lake) -> None:
    scores, decisions = _keys(lake)
    assert scores.select("content_id", "policy_id", "model_version").is_duplicated().sum() == 0
    key = ("content_id", "market", "policy_id", "policy_version", "model_version")
    assert decisions.select(key).is_duplicated().sum() == 0


def test_every_good_row_scored_and_decided_once_bad_rows_dead_lettered(reference: Lake) -> None:
    backlog = read(reference, "backlog")
    truth_ids = set(pl.read_delta(reference.path("ground_truth"))["content_id"].unique().to_list())
    policies = [p.id for p in load_default_pack().policies]
    scores, decisions = _keys(reference)
    _assert_exactly_once(reference)
    # Every good (generated, labelled) row: one score per policy...
    per_item = scores.group_by("content_id").agg(pl.col("policy_id").n_unique().alias("n"))
    assert set(per_item["content_id"].to_list()) == truth_ids
    assert per_item["n"].min() == len(policies)
    # ... and one decision per (market, policy) it is distributed to.
    good = backlog.filter(pl.col("content_id").is_in(list(truth_ids))).unique("content_id")
    expected = good.select(pl.col("markets").list.unique().list.len().sum()).item() * len(policies)
    assert decisions.height == expected
    # Every bad row is in dead_letters, with a reason; none of them has a score.
    dead = read(reference, "dead_letters")
    assert dead.height >= BAD
    assert dead["error_class"].null_count() == 0 and dead["message"].null_count() == 0
    bad_ids = set(backlog["content_id"].drop_nulls().to_list()) - truth_ids
    assert bad_ids <= set(dead["content_id"].drop_nulls().to_list())
    assert dead.filter(pl.col("content_id").is_null()).height >= 1  # the null-id row, by locator
    # Lineage in every row.
    for table in ("scores", "decisions"):
        frame = read(reference, table)
        assert frame["run_id"].null_count() == 0 and frame["source_version"].null_count() == 0
        assert set(frame["model_name"].unique().to_list()) == {"tiny"}


def test_second_run_adds_nothing(reference: Lake, ray_cluster: str, tmp_path: Path) -> None:
    lake = copy_lake(reference, tmp_path / "lake")
    before = [read(lake, t).height for t in ("scores", "decisions", "dead_letters")]
    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, ray_address=ray_cluster)
    assert "scored 0, dead-lettered 0" in out
    assert [read(lake, t).height for t in ("scores", "decisions", "dead_letters")] == before
    # Dead letters are retried only when asked; these rows fail again and are not re-recorded.
    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--retry-dead-letters", ray_address=ray_cluster)
    assert f"scored 0, dead-lettered {BAD}" in out
    assert [read(lake, t).height for t in ("scores", "decisions", "dead_letters")] == before


def test_driver_sigkill_after_first_commit_then_rerun_is_exactly_once(
    pristine: Lake, reference: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    lake = copy_lake(pristine, tmp_path / "lake")
    args = ("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "500")
    proc = batchjobs(*args, ray_address=ray_cluster)
    deadline = time.monotonic() + 300
    # Wait for the first scores commit beyond table creation, then kill the driver outright.
    while delta_commits(lake, "scores") < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the backfill finished before it could be killed: use smaller chunks"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read(lake, "scores").height
    assert 0 < partial < read(reference, "scores").height
    run_ok(*args, ray_address=ray_cluster)
    _assert_exactly_once(lake)
    got_s, got_d = _keys(lake)
    want_s, want_d = _keys(reference)
    assert got_s.drop("score").equals(want_s.drop("score"))
    assert (got_s["score"] - want_s["score"]).abs().max() < 1e-6  # type: ignore[operator]
    assert got_d.equals(want_d)
    assert read(lake, "dead_letters").height == read(reference, "dead_letters").height


def test_killing_a_scoring_actor_mid_run_still_finishes_exactly_once(
    pristine: Lake, reference: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    lake = copy_lake(pristine, tmp_path / "lake")
    args = ("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "300")
    proc = batchjobs(*args, ray_address=ray_cluster)
    killed: list[int] = []
    deadline = time.monotonic() + 300
    while not killed and proc.poll() is None and time.monotonic() < deadline:
        if delta_commits(lake, "scores") >= 2:
            # Ray workers are children of this test process's raylet: kill the scoring actor's
            # real process (its title names the Score stage), not a polite ray.kill.
            for pid, cmd in descendants(os.getpid()).items():
                if "Score" in cmd:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=600)
    assert killed, "no scoring actor was seen alive mid-run"
    assert proc.returncode == 0, err[-4000:]
    _assert_exactly_once(lake)
    assert _keys(lake)[1].equals(_keys(reference)[1])


def test_two_backfills_at_once_are_exactly_once(
    pristine: Lake, reference: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    lake = copy_lake(pristine, tmp_path / "lake")
    args = ("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "400")
    procs = [batchjobs(*args, ray_address=ray_cluster) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-4000:]
    _assert_exactly_once(lake)
    assert _keys(lake)[1].equals(_keys(reference)[1])


def test_crash_between_scores_and_decisions_commit_is_repaired_by_the_next_run(
    pristine: Lake, reference: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    """A job that died after committing a chunk's scores but before its decisions: the next
    run finds those rows scored but undecided and decides them from the stored scores."""
    from pipelines.scoring.commit import ChunkWriter, Lineage, scores_long
    from pipelines.backfill.config import BackfillConfig
    from pipelines.backfill.plan import make_plan
    from pipelines.scoring.stages import READ_COLUMNS, Preprocess, Score
    from pipelines.model import load_model, resolve_model

    lake = copy_lake(pristine, tmp_path / "lake")
    pack = load_default_pack()
    model = load_model(TINY_URI, lake=lake)
    plan = make_plan(
        BackfillConfig(lake=lake, model_uri=TINY_URI, chunk_rows=500),
        model_version=model.version,
        policy_version=pack.policy_version,
    )
    chunk = plan.to_score.filter(pl.col("chunk_id") == 0)
    rows = (
        read(lake, "backlog")
        .filter(pl.col("content_id").is_in(chunk["content_id"].implode()))
        .unique("content_id", keep="first")
        .select(*READ_COLUMNS)
        .with_columns(pl.lit(0, pl.Int64).alias("chunk_id"))
    )
    # What the commit actor would hold for chunk 0, computed by the same stages in-process.
    ref = resolve_model(TINY_URI, lake=lake)
    scored = pl.from_arrow(Score(ref, lake.root, 1)(Preprocess(model.preprocessor())(rows.to_arrow())))
    assert isinstance(scored, pl.DataFrame)
    ok = scored.filter(pl.col("error_class").is_null())
    lineage = Lineage(
        job=f"backfill-{plan.job}",
        run_id="crashed-run",
        model_name=model.name,
        model_version=model.version,
        source_version=plan.source_version,
        policy_version=pack.policy_version,
        source_uri=plan.source_uri,
    )
    ChunkWriter(lake, lineage, pack).scores(scores_long(ok, model.heads, pack), 0)  # ... and the job dies here
    assert delta_commits(lake, "decisions") == 0

    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "500", ray_address=ray_cluster)
    assert f"re-decided {ok.height}" in out
    _assert_exactly_once(lake)
    got_s, got_d = _keys(lake)
    want_s, want_d = _keys(reference)
    assert got_s.drop("score").equals(want_s.drop("score"))
    assert got_d.equals(want_d)
