"""Range partitions of content_id read straight from clustered files: each row in exactly one range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.audit.buckets import ReadSpec, constant_columns, map_reduce, pinned_files
from pipelines.audit.ranges import FileRange, plan_ranges


def _f(lo: str, hi: str, rows: int = 100, nulls: bool = False) -> tuple[FileRange, ...]:
    return (FileRange(lo, hi, rows, nulls),)


def test_disjoint_files_are_cut_at_file_boundaries() -> None:
    files = [_f("a", "b"), _f("c", "d"), _f("e", "f"), _f("g", "h")]
    plan = plan_ranges([files], 2)
    assert plan is not None and plan.cuts == ("e",) and plan.amplification == 1.0
    assert plan.reads == (((0, 1), (2, 3)),)


def test_files_spanning_the_key_space_fall_back_to_the_shuffle() -> None:
    wide = [_f("a", "z") for _ in range(4)]
    assert plan_ranges([wide], 3) is None
    assert plan_ranges([[*[_f("a", "b")], (FileRange(None, None, 5),)]], 2) is None


def test_a_small_wide_tail_is_read_by_every_range_and_nulls_go_to_range_0() -> None:
    files = [_f(f"{c}0", f"{c}9", 1000) for c in "abcdefgh"] + [_f("a1", "h5", 50, nulls=True)]
    plan = plan_ranges([files], 4)
    assert plan is not None and plan.n == 4
    assert all(8 in r for r in plan.reads[0])  # the tail meets every range
    assert plan.amplification == pytest.approx((8000 + 4 * 50) / 8050, abs=1e-3)


def _table(tmp: Path, clustered: bool) -> str:
    """Decision-like rows in 6 appends: id-ordered (clustered) or shuffled, plus a small shuffled tail."""
    rng = np.random.default_rng(3)
    uri = str(tmp / ("c" if clustered else "u"))
    ids = np.array([f"i{n:06d}" for n in range(6000)])
    if not clustered:
        rng.shuffle(ids)
    for part in np.array_split(ids, 6):
        write_deltalake(uri, pl.DataFrame({"content_id": part, "v": rng.random(part.size)}).to_arrow(), mode="append")
    tail = rng.choice(ids, 40)
    with_null = pl.DataFrame({"content_id": [*tail, None], "v": rng.random(41)})
    write_deltalake(uri, with_null.to_arrow(), mode="append")
    return uri


@pytest.mark.parametrize("clustered", [True, False])
def test_every_row_lands_in_exactly_one_partition_whatever_the_layout(tmp_path: Path, clustered: bool) -> None:
    uri = _table(tmp_path, clustered)
    pinned = pinned_files(uri, DeltaTable(uri).version())
    spec = ReadSpec(pinned, {"content_id": pl.String(), "v": pl.Float64()})
    parts = list(map_reduce(spec, lambda rows: rows, use_ray=False, buckets=3))
    assert len(parts) == 3
    whole = pl.read_delta(uri)
    got = pl.concat(parts)
    assert got.sort("content_id", "v", nulls_last=True).equals(whole.sort("content_id", "v", nulls_last=True))
    # An id never lands in two partitions (all rows of a decision key meet in one task).
    owners = pl.concat(
        [p.select("content_id").unique().with_columns(pl.lit(i).alias("p")) for i, p in enumerate(parts)]
    )
    assert owners.group_by("content_id").len()["len"].max() == 1
    # Clustered appends are cut into ranges; shuffled ids take the hash shuffle.
    assert (plan_ranges([[(r,) for r in pinned.ranges]], 3) is not None) == clustered


def test_compact_cluster_turns_random_ids_into_id_ranges(tmp_path: Path) -> None:
    """A table of random ids takes the shuffle; `compact --cluster` makes it readable by range, same rows."""
    from pipelines.compact import compact
    from pipelines.lake import open_lake

    lake = open_lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(5)
    ids = np.array([f"{rng.integers(0, 16**12):012x}" for _ in range(6000)])
    for part in np.array_split(ids, 6):
        frame = pl.DataFrame({"content_id": part, "locator": [f"x#{i}" for i in part]})
        write_deltalake(lake.path("dead_letters"), frame.to_arrow(), mode="append")
    uri = lake.path("dead_letters")
    before = pinned_files(uri, DeltaTable(uri).version())
    assert plan_ranges([[(r,) for r in before.ranges]], 3) is None
    [done] = compact(lake, ("dead_letters",), cluster=True, cluster_rows=1000)
    assert done.version is not None
    after = pinned_files(uri, done.version)
    plan = plan_ranges([[(r,) for r in after.ranges]], 3)
    assert plan is not None and plan.amplification <= 1.5
    assert (
        pl.read_delta(uri)
        .sort("content_id")
        .equals(pl.read_delta(uri, version=before.version).select(pl.read_delta(uri).columns).sort("content_id"))
    )


def test_a_partitioned_table_reads_its_partition_columns_from_the_log(tmp_path: Path) -> None:
    """A partitioned table's files do not hold the partition columns: the passes take them from
    the Delta log, and filters on them work (found by running the audit on such a table)."""
    uri = str(tmp_path / "part")
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {"content_id": [f"c{i:05d}" for i in range(3000)], "policy_id": rng.choice(["hate", "scams", "x"], 3000),
         "n": rng.integers(0, 9, 3000)}
    )  # fmt: skip
    write_deltalake(uri, frame.to_arrow(), partition_by=["policy_id", "n"])
    pinned = pinned_files(uri, DeltaTable(uri).version())
    spec = ReadSpec(pinned, {"content_id": pl.String(), "policy_id": pl.String(), "n": pl.Int64()})
    parts = list(map_reduce(spec, lambda rows: rows, use_ray=False, buckets=3))
    key = ["content_id", "policy_id", "n"]
    assert pl.concat(parts).sort(key).equals(frame.sort(key))
    only = ReadSpec(pinned, spec.schema, pl.col("policy_id").is_in(["hate"]) & (pl.col("n") < 4))
    got = pl.concat(list(map_reduce(only, lambda rows: rows, use_ray=False, buckets=2)))
    assert got.sort(key).equals(frame.filter(pl.col("policy_id") == "hate", pl.col("n") < 4).sort(key))


def test_cuts_sit_at_the_nearest_file_boundary() -> None:
    """A small later file over the first ids (a re-decision of old items) must not make range 0
    a whole file larger than its share: each cut goes to the file boundary nearest its ideal
    place (the 5x10^7-row benchmark's range 0 held 2.5 M rows for a share of 1.94 M)."""
    files = [_f(f"c{i:03d}", f"c{i:03d}~", 1000) for i in range(50)] + [_f("c000", "c000a", 505)]
    plan = plan_ranges([files], 26)
    assert plan is not None and plan.n == 26
    share = sum(f.rows for (f,) in files) / 26
    assert max(plan.rows) <= 2000 < share + 1000  # within half a file of the share, either way
    assert plan.rows[0] == 1505  # the re-decided file and the first one, not a third file too


def test_a_file_inside_its_range_is_read_without_the_filter() -> None:
    """Only files whose statistics put every row inside the range skip its filter (a filter splits
    the columns it reads into many chunks); a file across a cut, one with null ids beyond range
    0, or one without statistics keeps it."""
    plan = plan_ranges([[_f("a", "b"), _f("c", "d"), _f("e", "f"), _f("g", "h")]], 2)
    assert plan is not None and plan.cuts == ("e",)
    assert plan.holds(0, FileRange("a", "d", 10)) and plan.holds(1, FileRange("e", "h", 10))
    assert not plan.holds(0, FileRange("a", "e", 10)) and not plan.holds(1, FileRange("d", "f", 10))
    assert plan.holds(0, FileRange("a", "b", 10, has_null_ids=True))
    assert not plan.holds(1, FileRange("f", "g", 10, has_null_ids=True))
    assert not plan.holds(0, FileRange(None, None, 10))


def test_a_range_with_overlapping_files_costs_more_and_is_scheduled_first() -> None:
    """Repeated keys exist only where files overlap (a sweep's or a re-scoring's append over ids
    already decided): such a range costs its rows plus its overlapping rows, so the pass starts
    it first even when it holds fewer rows (range 0 of the 5x10^7-row benchmark: 1.5 M rows, the
    costliest range, was submitted eighth by rows)."""
    from pipelines.audit.buckets import submission_order

    files = [_f(f"c{i:03d}", f"c{i:03d}~", 1000) for i in range(8)] + [_f("c000", "c000a", 500)]
    plan = plan_ranges([files], 4)
    # Cut by cost, not rows: the re-decided file and the file it overlaps cost more than two plain
    # files, and range 0 takes no other (cut by rows it took a third: 2500 rows, cost 3250).
    assert plan is not None and plan.rows == (1500, 2000, 3000, 2000)
    assert plan.costs == (2250, 2000, 3000, 2000)
    # ... and starts after the ranges that cost more (it was first when its rows counted twice:
    # 3000), before the one that costs less.
    assert submission_order(plan.costs) == [2, 0, 1, 3]
    # A larger re-decided file: range 0 is the costliest by more than a tie, and starts first.
    files[-1] = _f("c000", "c000a", 1200)
    plan = plan_ranges([files], 4)
    assert plan is not None and plan.costs[0] == 3300 > max(plan.costs[1:])
    assert submission_order(plan.costs)[0] == 0
    # One wide file over two later ones (each overlapping it), then disjoint files.
    plan = plan_ranges([[_f("a", "m", 10), _f("b", "c", 20), _f("d", "e", 40), _f("n", "o", 70), _f("p", "q", 70)]], 2)
    assert plan is not None and plan.cuts == ("n",) and plan.costs == (70 + 35, 140)


def test_two_tables_read_side_by_side_are_weighed_apart() -> None:
    """Decisions and scores read side by side hold the same ids without repeating a key: their
    pieces do not make each other costly (pooled, a scores file over the upper half of the ids
    doubled the weight of the decisions files there, and range 0 took 3 of 15 files for a share
    of 1.9)."""
    decisions = [_f(f"c{i:03d}", f"c{i:03d}~", 1000) for i in range(10)]
    scores = [_f(f"c{i:03d}", f"c{i:03d}~", 1000) for i in range(5, 10)]
    plan = plan_ranges([decisions, scores], 8)
    assert plan is not None and plan.n == 8
    assert plan.costs == plan.rows  # no key repeats within either table
    assert max(plan.rows) <= 15_000 / 8 + 500  # within half a file of the share
    # A re-decided file over the first decisions is still weighed as such, in its own table.
    plan = plan_ranges([[*decisions, _f("c000", "c000a", 900)], scores], 8)
    assert plan is not None and plan.costs[0] == 1.5 * plan.rows[0] == 2850


def test_constant_columns_come_from_exact_statistics_and_agree_across_files(tmp_path: Path) -> None:
    """A column counts as holding one value in a set of files only where every file's statistics
    say so (minimum = maximum, no null, short enough not to be truncated) with the same value."""
    uri = str(tmp_path / "t")
    long = "v" * 40  # statistics of 32 bytes or more may be truncated prefixes: never trusted
    files = [
        {"model": ["a", "a"], "run": ["r1", "r1"], "lang": ["en", None], "long": [long, long], "n": [1, 2]},
        {"model": ["a", "a"], "run": ["r2", "r2"], "lang": ["de", "de"], "long": [long, long], "n": [3, 4]},
        {"model": ["a", "b"], "run": ["r2", "r2"], "lang": ["de", "de"], "long": [long, long], "n": [5, 6]},
    ]
    for f in files:
        write_deltalake(uri, pl.DataFrame(f).to_arrow(), mode="append")
    pinned = pinned_files(uri, DeltaTable(uri).version())
    # The log lists files in no particular order: each is known by what it holds.
    kind = {("model" in dict(c), dict(c).get("run")): i for i, c in enumerate(pinned.constants)}
    first, second, third = kind[True, "r1"], kind[True, "r2"], kind[False, "r2"]
    assert dict(pinned.constants[first]) == {"model": "a", "run": "r1"}  # lang has a null; long is too long
    assert dict(pinned.constants[second]) == {"model": "a", "run": "r2", "lang": "de"}
    assert dict(pinned.constants[third]) == {"run": "r2", "lang": "de"}
    assert constant_columns(pinned, [first, second]) == {"model"}  # run differs: r1 against r2
    assert constant_columns(pinned, [second, third]) == {"run", "lang"}
    assert constant_columns(pinned, range(3)) == frozenset()


@pytest.mark.parametrize("runs", ["per append", "one"])
@pytest.mark.parametrize("clustered", [True, False])
@pytest.mark.parametrize("buckets", [1, 3, 5])
def test_a_partition_is_told_only_of_columns_constant_in_its_rows(
    tmp_path: Path, clustered: bool, buckets: int, runs: str
) -> None:
    """Ranges get the columns constant in the files they read, hash buckets (and the one local
    partition) those constant in the whole table: never one that varies in their rows."""
    # Six appends of ids in order (or shuffled), ``run`` one value per append, the same for two
    # appends in a row (or one value for all); a small tail over every id.
    rng = np.random.default_rng(5)
    uri = str(tmp_path / "t")
    ids = np.array([f"i{n:06d}" for n in range(6000)])
    if not clustered:
        rng.shuffle(ids)
    run = (lambda k: f"r{k // 2}") if runs == "per append" else (lambda k: "r2")
    for k, part in enumerate(np.array_split(ids, 6)):
        write_deltalake(uri, pl.DataFrame({"content_id": part, "run": run(k)}).to_arrow(), mode="append")
    write_deltalake(uri, pl.DataFrame({"content_id": rng.choice(ids, 40), "run": "r2"}).to_arrow(), mode="append")
    pinned = pinned_files(uri, DeltaTable(uri).version())
    spec = ReadSpec(pinned, {"content_id": pl.String(), "run": pl.String()})

    def seen(rows: pl.DataFrame, *, constants: tuple[frozenset[str], ...]) -> tuple[int, bool, frozenset[str]]:
        return rows.height, rows["run"].n_unique() == 1 and not rows["run"].null_count(), constants[0]

    parts = list(map_reduce(spec, seen, use_ray=False, buckets=buckets, pass_constants=True))
    assert sum(n for n, _, _ in parts) == pinned.total_rows
    for _, one_value, constants in parts:
        assert constants <= {"run"} and ("run" not in constants or one_value)
    told = [constants == {"run"} for _, _, constants in parts]
    if runs == "one":
        assert all(told)  # the whole table holds one value: every partition is told
    else:
        # Clustered, in ranges, some range reads only appends of one run; a hash bucket (or the
        # one partition) gets rows of every file.
        assert any(told) == (clustered and buckets > 1)
