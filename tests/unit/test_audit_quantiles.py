"""The audit's mergeable quantile summary: exact while small, within its stated rank error when
large (groups far larger than k, merged from many buckets), and deterministic."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.audit.quantiles import Summary, error_bound, exact_quantiles

QS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _rank(sorted_values: np.ndarray, x: float) -> float:
    return float(np.searchsorted(sorted_values, x, side="right")) / sorted_values.size


def test_small_groups_are_exact_like_polars() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.beta(0.4, 4.0, n) for n in (1, 7, 63, 1000)]
    s = Summary()
    for p in parts:
        s.merge(Summary().add(p))
    assert s.exact
    want = pl.Series(np.concatenate(parts))
    for q, got in zip(QS, s.quantiles(QS), strict=True):
        assert got == pytest.approx(want.quantile(q, interpolation="linear"), rel=0, abs=1e-15)


@pytest.mark.parametrize(("n", "buckets"), [(200_000, 1), (1_000_000, 37), (3_000_000, 8)])
def test_large_groups_within_the_stated_rank_error(n: int, buckets: int) -> None:
    rng = np.random.default_rng(n)
    values = np.concatenate([rng.beta(0.4, 4.0, n // 2), rng.exponential(30.0, n - n // 2)])
    rng.shuffle(values)
    s = Summary()
    for part in np.array_split(values, buckets):
        s.merge(Summary().add(part))
    assert not s.exact and s.n == n
    bound = error_bound(n)
    assert 0 < bound < 0.01
    ordered = np.sort(values)
    worst = max(abs(_rank(ordered, got) - q) for q, got in zip(QS, s.quantiles(QS), strict=True))  # type: ignore[arg-type]
    assert worst <= bound + 1 / n, (worst, bound)
    # The summary stays small: about k values per level.
    assert sum(level.size for level in s.levels) <= 2 * s.k * len(s.levels)


def test_same_values_same_merge_order_same_answer_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    parts = [rng.random(100_000) for _ in range(6)]

    def build() -> list[float | None]:
        s = Summary()
        for p in parts:
            s.merge(Summary().add(p))
        return s.quantiles(QS)

    assert build() == build()


def test_nan_and_empty() -> None:
    assert Summary().quantiles((0.5,)) == [None]
    assert Summary().add(np.array([np.nan, 2.0])).quantiles((0.5,)) == [2.0]
    assert exact_quantiles(np.array([]), (0.5,)) == [None]


def test_merging_many_summaries_at_once_is_exact_while_small_and_within_the_bound() -> None:
    rng = np.random.default_rng(11)
    small = [Summary().add(rng.random(n)) for n in (5, 300, 2000)]
    values = np.concatenate([np.concatenate(s.levels) for s in small])
    merged = Summary.merged(small)
    assert merged.exact and merged.n == values.size
    want = pl.Series(values)
    for q, got in zip(QS, merged.quantiles(QS), strict=True):
        assert got == pytest.approx(want.quantile(q, interpolation="linear"), rel=0, abs=1e-15)
    # 27 large parts (a group of markets), each already compacted.
    parts_values = [rng.exponential(1.0 + i, 60_000) for i in range(27)]
    parts = [Summary().add(v) for v in parts_values]
    big = Summary.merged(parts)
    assert not big.exact and big.n == 27 * 60_000
    ordered = np.sort(np.concatenate(parts_values))
    worst = max(abs(_rank(ordered, got) - q) for q, got in zip(QS, big.quantiles(QS), strict=True))  # type: ignore[arg-type]
    assert worst <= error_bound(big.n) + 1 / big.n, worst
    assert Summary.merged([]).quantiles((0.5,)) == [None]


def test_float32_values_stay_float32_and_give_the_float64_answers() -> None:
    """Scores are stored as float32: summaries keep them so (half the bytes) and must answer as
    if the values had been widened to float64 first, exact or compacted."""
    rng = np.random.default_rng(32)
    for n, parts in ((5_001, 3), (300_001, 6)):  # exact, then compacted
        v32 = rng.beta(0.4, 4.0, n).astype(np.float32)
        narrow = Summary.merged([Summary().add(p) for p in np.array_split(v32, parts)])
        wide = Summary.merged([Summary().add(p.astype(np.float64)) for p in np.array_split(v32, parts)])
        assert all(level.dtype == np.float32 for level in narrow.levels)
        assert narrow.exact == wide.exact == (n <= narrow.exact_max)
        assert narrow.quantiles(QS) == wide.quantiles(QS)
        if narrow.exact:
            want = pl.Series(v32.astype(np.float64))
            assert narrow.quantiles(QS) == [want.quantile(q, interpolation="linear") for q in QS]


def test_packed_summaries_unpack_to_the_same_answers_in_memory_of_their_own() -> None:
    """What a partition ships (quantiles.pack) unpacks to summaries with the same levels, flips
    and answers, whose levels share no memory with what was shipped: exact and compacted
    summaries, float32 and float64 values, empty ones."""
    from pipelines.audit.quantiles import pack, unpack

    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh inputs each run; the seed is in failures
    rng = np.random.default_rng(seed)
    summaries = [
        Summary().add(rng.random(int(rng.integers(1, 5000))).astype(np.float32)),
        Summary().add(rng.random(100_001).astype(np.float32)),  # compacted: several levels
        Summary(),
        Summary().add(rng.random(3).astype(np.float32)),
    ]
    hours = [Summary().add(rng.exponential(30.0, n)) for n in (1, 70_000, 5)]
    for group in (summaries, hours, []):
        packed = pack(group)
        back = unpack(packed)
        assert len(back) == len(group), seed
        for a, b in zip(group, back, strict=True):
            assert (a.n, a.k, a.exact_max, a.flips) == (b.n, b.k, b.exact_max, b.flips)
            assert [x.dtype for x in a.levels] == [y.dtype for y in b.levels]
            assert all(np.array_equal(x, y) for x, y in zip(a.levels, b.levels, strict=True))
            assert not any(np.shares_memory(y, packed.values) for y in b.levels)
            assert a.quantiles(QS) == b.quantiles(QS), seed


def test_a_merged_summary_keeps_no_view_of_the_arrays_it_was_merged_from() -> None:
    """Each level of a compacted summary owns its values: a view would keep the whole merged run
    alive (half a megabyte per summary, 170 MB over an audit's 500 at 10^7 rows)."""
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    parts = [Summary().add(rng.random(7001)) for _ in range(6)]
    merged = Summary.merged(parts)
    assert not merged.exact
    for level in merged.levels:
        assert level.base is None or level.base.size == level.size


def test_lists_sorted_in_one_buffer_give_the_summaries_of_adding_each_list() -> None:
    """A partition sorts each group's scores and hours in one buffer (partial.sorted_runs): the
    summaries must be those of Summary.add on each list, NaN and nulls dropped, dtype kept,
    groups large enough to compact included."""
    from pipelines.audit.partial import sorted_runs

    rng = np.random.default_rng()
    sizes = [int(n) for n in rng.integers(1, 3000, size=int(rng.integers(3, 12)))] + [40_001]
    for dtype in (pl.Float32, pl.Float64):
        lists = []
        for n in sizes:
            values = rng.random(n)
            values[rng.random(n) < 0.05] = np.nan
            nulls = rng.random(n) < 0.05
            lists.append([None if null else float(v) for v, null in zip(values, nulls, strict=True)])
        lists.append([None, float("nan")])  # nothing left to summarize
        series = pl.Series("v", lists, dtype=pl.List(dtype)).slice(1)  # offsets not from zero
        runs = sorted_runs(series)
        assert len(runs) == series.len()
        for run, values in zip(runs, series, strict=True):
            got, want = Summary.of_sorted(run), Summary().add(values.to_numpy())
            assert got.n == want.n and len(got.levels) == len(want.levels)
            for a, b in zip(got.levels, want.levels, strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b)
            assert got.quantiles((0.1, 0.5, 0.99)) == want.quantiles((0.1, 0.5, 0.99))


def test_exact_summaries_merged_in_one_pass_equal_the_level_by_level_compaction() -> None:
    """Summary.merged compacts the merged run of exact parts in one pass (quantiles._cascade):
    levels, flips and answers equal those of _compact on the same sorted run."""
    rng = np.random.default_rng()
    for total in (10, 32_768, 32_769, int(rng.integers(33_000, 300_000))):
        for dtype in (np.float32, np.float64):
            values = rng.random(total).astype(dtype)
            pieces = -(-total // 32_768) + int(rng.integers(0, 8))  # each part exact (<= exact_max)
            parts = [Summary().add(v) for v in np.array_split(values, pieces)]
            assert all(p.exact for p in parts)
            got = Summary.merged(parts)
            want = Summary()
            want._put(0, np.sort(values), owned=True)
            want.n = total
            want._compact()
            assert got.n == want.n and got.flips == want.flips and len(got.levels) == len(want.levels)
            for a, b in zip(got.levels, want.levels, strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b) and a.flags.c_contiguous
            assert got.quantiles((0.01, 0.5, 0.9)) == want.quantiles((0.01, 0.5, 0.9))


def test_hours_to_decision_are_reported_to_the_digits_they_are_kept_at() -> None:
    """The partitions keep hours as float32 (pipelines.audit.partial._hours): the report shows
    them at that precision (36.35 h, not the 36.349998474121094 a float32 holds), within two float32
    steps of the float64 quantile, whatever the values."""
    from datetime import datetime, timedelta

    from pipelines.audit.partial import _hours, _q_row

    created = datetime(2026, 1, 1)
    seed = int(np.random.SeedSequence().entropy % 2**32)  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    # Some decided before they were created (clock skew in a source system): negative hours.
    minutes = np.concatenate([[36 * 60 + 21] * 5, rng.integers(-(10**4), 10**7, size=int(rng.integers(1, 999)))])
    for sample in (minutes[:5], minutes):
        frame = pl.DataFrame(
            {"created_at": [created] * len(sample), "decided_at": [created + timedelta(minutes=int(m)) for m in sample]}
        )
        hours = frame.select(_hours()).to_series()
        assert hours.dtype == pl.Float32
        row = _q_row(Summary().add(np.array([0.5], dtype=np.float32)), Summary().add(hours.to_numpy()))
        exact = (frame["decided_at"] - frame["created_at"]).dt.total_seconds() / 3600
        for name, q in (("hours_to_decision_p50", 0.5), ("hours_to_decision_p90", 0.9)):
            assert row[name] == pytest.approx(exact.quantile(q, "linear"), rel=2.4e-7), f"seed {seed}"
    assert _q_row(Summary(), Summary().add(np.full(5, 36.35, dtype=np.float32)))["hours_to_decision_p50"] == 36.35
    assert _q_row(Summary(), Summary())["hours_to_decision_p90"] is None  # no decision in the group
