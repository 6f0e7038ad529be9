"""Micro-batched decision logging: commits by count or by age, never one per request, retries safely."""

from __future__ import annotations

import time

import polars as pl
import pytest

from pipelines.serve import DecisionLog, LogConfig


def frame(ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"content_id": ids, "policy_id": ["hate"] * len(ids), "score": [0.5] * len(ids)})


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[int, list[str]]] = []
        self.fail = fail

    def __call__(self, batch: pl.DataFrame, seq: int) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("lake unreachable")
        self.calls.append((seq, sorted(batch["content_id"].to_list())))


def wait_for(cond: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_commits_by_count_many_requests_per_commit() -> None:
    rec = Recorder()
    dlog = DecisionLog(rec, LogConfig(max_rows=10, max_seconds=3600))
    for i in range(25):
        dlog.add(frame([f"c{i}"]))
    wait_for(lambda: len(rec.calls) >= 1)  # by count: max_seconds is an hour
    dlog.close()
    assert [seq for seq, _ in rec.calls] == list(range(len(rec.calls)))
    assert sorted(i for _, ids in rec.calls for i in ids) == sorted(f"c{i}" for i in range(25))
    assert len(rec.calls) <= 3  # 25 requests, at most 3 commits


def test_commits_by_age() -> None:
    rec = Recorder()
    dlog = DecisionLog(rec, LogConfig(max_rows=1000, max_seconds=0.2))
    dlog.add(frame(["a", "b"]))
    wait_for(lambda: len(rec.calls) == 1)
    assert rec.calls == [(0, ["a", "b"])]
    dlog.close()
    assert len(rec.calls) == 1


def test_close_flushes_and_duplicates_in_a_batch_collapse() -> None:
    rec = Recorder()
    dlog = DecisionLog(rec, LogConfig(max_rows=1000, max_seconds=3600))
    dlog.add(frame(["a"]))
    dlog.add(frame(["a", "b"]))
    dlog.close()
    assert rec.calls == [(0, ["a", "b"])]


def test_failed_commit_is_retried_alone_with_its_sequence() -> None:
    rec = Recorder(fail=1)
    dlog = DecisionLog(rec, LogConfig(max_rows=1000, max_seconds=3600))
    dlog.add(frame(["a"]))
    assert dlog.flush() == 0  # failed: kept for a retry
    dlog.add(frame(["b"]))
    dlog.close()
    # The failed batch went again alone as seq 0; newer rows got seq 1.
    assert rec.calls == [(0, ["a"]), (1, ["b"])]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        LogConfig(max_rows=0)
    with pytest.raises(ValueError, match="max_seconds"):
        LogConfig(max_seconds=0)
