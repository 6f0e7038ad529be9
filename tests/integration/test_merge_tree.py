"""The merge tree of the whole-table passes on Ray (pipelines.audit.buckets.map_reduce): a merge
task starts only once its inputs are done, never waiting on a worker for partitions still
running (which makes Ray start more worker processes than cores).

Whether a merge submitted early is dispatched before the queued partitions depends on Ray's
order between task kinds: in the 10^7-row audit with 10 partitions it was (a merge started on a
worker at 0.7 s and waited there 2 s), here it may not be; the invariant is checked either way."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake

pytestmark = pytest.mark.usefixtures("ray_cluster")

PARTITIONS = 10  # more than FAN_IN (8): one level of merge tasks below the root


def _partition(rows: pl.DataFrame) -> dict[str, object]:
    time.sleep(0.15 + 0.25 * (hash(rows["content_id"][0]) % 3))  # uneven partitions
    # (a merge must not start before they end)
    return {"rows": rows.height, "done": time.time(), "merges": []}


def _merge(parts: Iterable[dict[str, object]]) -> dict[str, object]:
    started = time.time()
    parts = list(parts)
    merges = [m for p in parts for m in p["merges"]]  # type: ignore[attr-defined]
    merges.append((started, max(float(p["done"]) for p in parts)))  # type: ignore[arg-type]
    return {"rows": sum(int(p["rows"]) for p in parts), "done": time.time(), "merges": merges}  # type: ignore[call-overload]


def _root(parts: Iterable[dict[str, object]]) -> dict[str, object]:
    parts = list(parts)
    merges = [m for p in parts for m in p["merges"]]  # type: ignore[attr-defined]
    return {"rows": sum(int(p["rows"]) for p in parts), "merges": merges}  # type: ignore[call-overload]


def test_merge_tasks_start_after_their_inputs_are_done(tmp_path: Path) -> None:
    from pipelines.audit.buckets import FAN_IN, map_reduce

    assert PARTITIONS > FAN_IN
    spec = _table(tmp_path, PARTITIONS, ids=50)
    (out,) = map_reduce(spec, _partition, use_ray=True, buckets=PARTITIONS, combine=_merge, root=_root)
    assert out["rows"] == PARTITIONS * 50
    merges = out["merges"]
    assert len(merges) == 2, merges  # ceil(10 / FAN_IN) merge tasks
    for started, inputs_done in merges:
        assert started >= inputs_done, (started, inputs_done)


MIB = 1 << 20
PART_MIB = 16


def _table(tmp_path: Path, files: int, *, ids: int = 20, bad: int | None = None) -> object:
    """A table of ``files`` files of ``ids`` ids each, clustered by file (one partition per file);
    file ``bad``'s ids contain "bad"."""
    from pipelines.audit.buckets import ReadSpec, pinned_files

    uri = str(tmp_path / "t")
    for f in range(files):
        content_ids = [f"c{f:02d}{'bad' if f == bad else ''}{i:03d}" for i in range(ids)]
        write_deltalake(uri, pl.DataFrame({"content_id": content_ids}).to_arrow(), mode="append")
    return ReadSpec(pinned_files(uri, files - 1), {"content_id": pl.String()})


def _heavy(rows: pl.DataFrame, bucket: int) -> dict[str, object]:
    if bucket == 0:
        time.sleep(7.0)  # the first partition of the first group ends last
    elif "bad" in rows["content_id"][0]:
        from pipelines.errors import BadInputError

        raise BadInputError(f"partition {bucket}: bad rows")
    else:
        time.sleep(0.6)
    # Bytes, copied out of the object store when unpickled (a numpy array would be a view of it
    # and pin it, as long as it is held: pipelines.audit.partial copies its arrays out).
    return {"rows": rows.height, "payload": bytes(PART_MIB * MIB)}


def _sum(parts: Iterable[dict[str, object]]) -> dict[str, object]:
    return {"rows": sum(int(p["rows"]) for p in parts), "payload": None}  # type: ignore[call-overload]


def _store_mib() -> float:
    from ray._private.internal_api import memory_summary

    text = memory_summary(stats_only=True)
    for line in text.splitlines():  # "Plasma memory usage 48 MiB, 3 objects, ..."
        if "Plasma memory usage" in line:
            return float(line.split("usage")[1].split("MiB")[0])
    raise AssertionError(text)


def test_partials_leave_the_object_store_as_soon_as_they_are_done(tmp_path: Path) -> None:
    """A group's partials are handed to its fold process one by one as they finish: the object
    store never holds the group's finished partials while its slowest partition still runs
    (merge tasks given the group's references pinned all of them until the merge ended)."""
    import threading

    from pipelines.audit.buckets import map_reduce

    spec = _table(tmp_path, 12)
    peak, stop = [0.0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _store_mib())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        (out,) = map_reduce(spec, _heavy, use_ray=True, buckets=12, pass_bucket=True, combine=_sum)
    finally:
        stop.set()
        watcher.join()
    assert out["rows"] == 12 * 20
    # The other 11 partitions finish while partition 0 sleeps: held until their group's merge,
    # seven (group 0's) would stay in the store. The store frees objects about once a second
    # (Ray's free_objects_period_milliseconds): about two partials finish in that time.
    assert peak[0] <= 4 * PART_MIB, peak[0]


def test_a_dead_fold_process_makes_the_tree_start_over_on_merge_tasks(tmp_path: Path) -> None:
    """Ray does not rebuild an actor's state: when a fold process dies, the partitions run again
    and merge tasks fold them. The result is the same."""
    import signal
    import threading

    from pipelines.audit.buckets import map_reduce

    spec = _table(tmp_path, 12)
    killed: list[int] = []

    def kill_fold_process() -> None:
        deadline = time.time() + 10
        while time.time() < deadline and not killed:
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and b"GroupFold" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        time.sleep(0.5)  # once it holds some partials
                        os.kill(int(pid), signal.SIGKILL)
                        killed.append(int(pid))
                        return
                except OSError:
                    continue
            time.sleep(0.05)

    killer = threading.Thread(target=kill_fold_process, daemon=True)
    killer.start()
    (out,) = map_reduce(spec, _heavy, use_ray=True, buckets=12, pass_bucket=True, combine=_sum)
    killer.join()
    assert killed, "no fold process was found"
    assert out["rows"] == 12 * 20


def test_a_failed_partition_raises_its_own_error_through_the_folds(tmp_path: Path) -> None:
    """A partition's error (bad input) reaches the caller with its type, not as a fold failure."""
    from pipelines.audit.buckets import map_reduce
    from pipelines.errors import BadInputError

    spec = _table(tmp_path, 12, bad=5)
    with pytest.raises(BadInputError, match="partition 5: bad rows"):
        list(map_reduce(spec, _heavy, use_ray=True, buckets=12, pass_bucket=True, combine=_sum))
