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
    # Policies the model scores and decides: one decided by hash banks alone has no model head.
    policies = [p.id for p in load_default_pack().policies if p.head is not None]
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
    """A job that died after committing a unit's scores but before its decisions: the next
    run finds those rows scored but undecided and decides them from the stored scores."""
    from pipelines.backfill.config import BackfillConfig
    from pipelines.backfill.plan import make_plan
    from pipelines.backfill.worker import UnitJob, UnitRunner
    from pipelines.model import resolve_model
    from pipelines.scoring.commit import Lineage

    lake = copy_lake(pristine, tmp_path / "lake")
    pack = load_default_pack()
    model = resolve_model(TINY_URI, lake=lake)
    config = BackfillConfig(lake=lake, model_uri=TINY_URI, chunk_rows=500)
    plan = make_plan(config, model_version=model.version, policy_version=pack.policy_version, use_ray=False)
    lineage = Lineage(
        job=f"backfill-{plan.job}",
        run_id="crashed-run",
        model_name=model.name,
        model_version=model.version,
        source_version=plan.source_version,
        policy_version=pack.policy_version,
        source_uri=plan.source_uri,
    )
    job = UnitJob(plan.spec, lineage, pack, tuple(model.heads), None, 256, {})
    runner = UnitRunner(job, model, lake.root, 1)

    def die(*_a: object, **_k: object) -> int:
        raise RuntimeError("the job dies between the scores and the decisions commit")

    runner.writer.decisions = die  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="the job dies"):
        runner.run(0, plan.exceptions_of(0))
    scored = read(lake, "scores")["content_id"].n_unique()
    assert scored > 0 and delta_commits(lake, "decisions") == 0

    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "500", ray_address=ray_cluster)
    assert f"re-decided {scored}" in out
    _assert_exactly_once(lake)
    got_s, got_d = _keys(lake)
    want_s, want_d = _keys(reference)
    assert got_s.drop("score").equals(want_s.drop("score"))
    assert got_d.equals(want_d)


def _kill_at(lake: Lake, args: tuple[str, ...], ray_cluster: str, share: float) -> int:
    """Start a backfill, SIGKILL the driver once ``share`` of its units committed; return units committed."""
    proc = batchjobs(*args, ray_address=ray_cluster)
    deadline = time.monotonic() + 600
    units = None
    committed = 0
    while proc.poll() is None and time.monotonic() < deadline:
        line = proc.stderr.readline() if units is None else ""  # type: ignore[union-attr]
        if units is None and "units with work:" in line:
            units = int(line.split("units with work:")[1].split()[0])
        if units:
            committed = delta_commits(lake, "decisions") - 1  # minus the table's creation
            if committed >= share * units:
                break
        else:
            time.sleep(0.02)
        time.sleep(0.02)
    assert proc.poll() is None, "the backfill finished before it could be killed: use smaller units"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert units is not None and units >= 20
    return committed


@pytest.mark.parametrize("optimize_between", [False, True], ids=["rerun", "optimize-then-rerun"])
def test_driver_sigkill_at_70_percent_keeps_finished_units_and_rerun_completes(
    pristine: Lake, reference: Lake, ray_cluster: str, tmp_path: Path, optimize_between: bool
) -> None:
    lake = copy_lake(pristine, tmp_path / "lake")
    args = ("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "120")
    _kill_at(lake, args, ray_cluster, 0.7)
    total = read(reference, "scores").height
    kept = read(lake, "scores").height
    assert kept >= 0.6 * total, f"only {kept} of {total} score rows were committed before the kill"
    if optimize_between:
        from deltalake import DeltaTable

        DeltaTable(lake.path("backlog")).optimize.compact()
    out = run_ok(*args, ray_address=ray_cluster)
    assert "scored 0," not in out  # the rest was scored
    _assert_exactly_once(lake)
    got_s, got_d = _keys(lake)
    want_s, want_d = _keys(reference)
    assert got_s.drop("score").equals(want_s.drop("score"))
    assert got_d.equals(want_d)
    assert read(lake, "dead_letters").height == read(reference, "dead_letters").height


def test_incremental_run_reads_only_the_new_file_and_commits_per_unit(
    reference: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    import math
    import shutil

    from deltalake import DeltaTable, write_deltalake

    lake = copy_lake(reference, tmp_path / "lake")
    uri = lake.path("backlog")
    old_files = set(DeltaTable(uri).file_uris())
    k, chunk = 230, 100
    good = pl.read_delta(lake.path("ground_truth"))["content_id"].unique()
    new = (
        read(lake, "backlog")
        .filter(pl.col("content_id").is_in(good.implode()))
        .unique("content_id")
        .head(k)
        .with_columns(pl.col("content_id") + "-new")
    )
    write_deltalake(uri, new.to_arrow(), mode="append")
    DeltaTable(uri).optimize.compact()  # compaction between runs re-scores nothing
    # Tests run as root, so chmod would not stop a read: move every file but the appended one away.
    keep = set(DeltaTable(uri, version=DeltaTable(uri).version() - 1).file_uris()) - old_files
    assert len(keep) == 1
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in set(DeltaTable(uri).file_uris()) | old_files:
        if f not in keep and os.path.exists(f):
            shutil.move(f, moved / Path(f).name)
    before = {t: delta_commits(lake, t) for t in ("scores", "decisions", "dead_letters")}
    out = run_ok(
        "backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", str(chunk), ray_address=ray_cluster
    )
    assert f"scored {k}," in out, out
    commits = {t: delta_commits(lake, t) - before[t] for t in before}
    assert max(commits.values()) <= math.ceil(k / chunk) + 1, commits
    _assert_exactly_once(lake)
    # Nothing new is left: the next run reads no file at all.
    assert "scored 0, dead-lettered 0" in run_ok(
        "backfill", "--lake", lake.root, "--model", TINY_URI, ray_address=ray_cluster
    )


def test_dry_run_plans_and_writes_nothing(pristine: Lake, tmp_path: Path) -> None:
    lake = copy_lake(pristine, tmp_path / "lake")
    before = sorted(p.name for p in Path(lake.root).iterdir())
    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "500", "--dry-run")
    assert "dry run: nothing was written" in out and "units with work: 7" in out
    assert sorted(p.name for p in Path(lake.root).iterdir()) == before
