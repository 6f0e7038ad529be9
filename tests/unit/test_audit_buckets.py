"""Whole-table passes by hash bucket of content_id: the merged result equals one pass over every row."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.audit.buckets import bucket_expr
from pipelines.audit.current import current_decisions
from pipelines.audit.sampling import _picked, draw, sample_bucket, units_from_decisions

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _decisions(n_items: int = 3000, seed: int = 4) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    markets, policies = ["DE", "FR", "US"], ["hate", "scams"]
    rows = n_items * len(markets) * len(policies)
    ids = np.repeat([f"c{i:05d}" for i in range(n_items)], len(markets) * len(policies))
    frame = pl.DataFrame(
        {
            "content_id": ids,
            "market": np.tile(np.repeat(markets, len(policies)), n_items),
            "policy_id": np.tile(policies, n_items * len(markets)),
            "policy_version": "p@1",
            "action": rng.choice(["none", "review", "remove"], rows),
            "score": rng.random(rows).astype(np.float32),
            "automated": "FULLY",
            "run_id": "r",
            "model_name": "m",
            "model_version": "1",
            "decided_at": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 1000, rows)],
            "created_at": T0 - timedelta(days=1),
            "region": rng.choice(["DE", "US", "BR"], rows),
            "language": "en",
            "content_type": "TEXT",
            "source": "model",
        }
    )
    # A later model run re-decides 10% of the keys (some with another action): "changed" units.
    again = frame.sample(fraction=0.1, seed=seed).with_columns(
        pl.col("decided_at") + timedelta(days=2), pl.lit("remove").alias("action"), pl.lit("2").alias("model_version")
    )
    return pl.concat([frame, again])


@pytest.mark.parametrize("buckets", [1, 3, 8])
def test_review_draw_from_buckets_equals_the_whole_table_draw(buckets: int) -> None:
    rows = _decisions()
    before = T0 + timedelta(days=10)
    whole = draw(
        units_from_decisions(current_decisions(rows.lazy(), before=before).lazy()).collect(),
        per_stratum=15,
        seed=9,
    )
    parts = [sample_bucket(rows.filter(bucket_expr(buckets) == b), before, 15, 9, 2) for b in range(buckets)]
    sizes = pl.concat([s for s, _ in parts]).group_by("stratum").agg(pl.col("stratum_size").sum())
    merged = _picked(pl.concat([c for _, c in parts]), sizes)
    assert merged.height == whole.height > 0
    assert merged.equals(whole.select(merged.columns))


def test_pinning_by_binary_search_equals_the_history_walk(tmp_path: object) -> None:
    import time
    from pathlib import Path

    from deltalake import write_deltalake

    from pipelines.audit.versions import _walk, version_as_of

    uri = str(Path(str(tmp_path)) / "t")
    stamps = []
    for i in range(9):
        write_deltalake(uri, pl.DataFrame({"x": [i]}).to_arrow(), mode="append")
        stamps.append(datetime.now(UTC))
        time.sleep(0.02)
    probes = [T0, *stamps, stamps[3] + timedelta(milliseconds=5), datetime.now(UTC)]
    for at in probes:
        want = _walk(uri, int(at.timestamp() * 1000))
        got = version_as_of(uri, at)
        assert got[0] == (want[0] if want else None), at
    assert version_as_of(uri, T0) == (None, None)
    assert version_as_of(uri, stamps[-1])[0] == 8


def test_folding_many_bucket_partials_equals_one_bucket() -> None:
    """Many partials folded (23 buckets): counts, quantiles and items are unchanged."""
    from pipelines.audit.partial import BucketArgs, aggregates, audit_bucket, fold, population_counts

    rows = _decisions(n_items=1500)
    args = BucketArgs(
        before=T0 + timedelta(days=10),
        start=None,
        dims=("policy_id",),
        groups=("EU", "GLOBAL"),
        unit_ids=pl.Series("__i", [], dtype=pl.UInt64),
        letter_ids=pl.Series("content_id", [], dtype=pl.String),
    )
    schema = rows.schema

    def agg(buckets: int) -> tuple[pl.DataFrame, ...]:
        parts = [audit_bucket(rows.filter(bucket_expr(buckets) == b), args) for b in range(buckets)]
        merged = fold(parts)
        a = aggregates(merged, dims=["policy_id"], groups=["EU", "GLOBAL"], schema=schema)
        counts = [a.counts, a.lineage, *population_counts(merged)]
        return (
            *(c.sort(c.columns) for c in counts),
            a.market_q.sort("region", "policy_id"),
            a.group_q.sort("region", "policy_id"),
        )

    one, many = agg(1), agg(23)
    for a, b in zip(one, many, strict=True):
        assert a.equals(b)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 16, 20, 64, 65, 200])
def test_local_merge_tree_has_the_shape_of_the_ray_tree(n: int) -> None:
    """In this process the partials are merged in the tree that map_reduce builds on Ray (merge
    tasks of FAN_IN while more than FAN_IN are left, then the root), holding at most FAN_IN."""
    from pipelines.audit.merge_tree import FAN_IN, level_sizes, tree_local

    def combine(parts: Iterable[object]) -> object:
        return ("c", *parts)

    def root(parts: Iterable[object]) -> object:
        return ("root", *parts)

    level: list[object] = list(range(n))
    while len(level) > FAN_IN:  # what map_reduce does with Ray tasks
        level = [combine(level[i : i + FAN_IN]) for i in range(0, len(level), FAN_IN)]
    assert tree_local(iter(range(n)), combine, root) == root(level)
    assert level_sizes(n)[-1] == len(level)


def _chunked(rows: pl.DataFrame, layout: str) -> pl.DataFrame:
    """``rows`` as a reader may return them: one chunk, one chunk per file, or columns chunked
    differently (a filter's reads)."""
    if layout == "one chunk":
        return rows
    cuts = [0, 7, rows.height // 3, rows.height // 2 + 5, rows.height]
    pieces = [rows.slice(lo, hi - lo) for lo, hi in itertools.pairwise(cuts)]
    files = pl.concat(pieces, rechunk=False)
    if layout == "files":
        return files
    other = pl.concat([rows["content_id"].slice(lo, 11) for lo in range(0, rows.height, 11)], rechunk=False)
    return files.with_columns(other)


@pytest.mark.parametrize("layout", ["one chunk", "files", "filtered"])
@pytest.mark.parametrize("start", [None, T0 + timedelta(minutes=500)])
def test_bucket_with_superseded_rows_marked_equals_them_dropped(
    monkeypatch: pytest.MonkeyPatch, start: datetime, layout: str
) -> None:
    """The partition leaves repeated keys' superseded rows in its frame, marked (no copy of the
    frame): every partial result equals the one computed on the frame without them, whatever
    the chunks of the frame it was given."""
    import pipelines.audit.partial as partial
    from pipelines.audit.current import current_marks, unit_hash

    rows = _chunked(_decisions(n_items=800, seed=7), layout)
    if layout != "one chunk":
        assert max(rows[c].n_chunks() for c in rows.columns) > 1
    units = rows.select(unit_hash(pl.col("content_id"), pl.col("policy_id")).alias("__i")).unique().head(500)
    args = partial.BucketArgs(
        before=T0 + timedelta(days=10),
        start=start,
        dims=("policy_id",),
        groups=("EU", "GLOBAL"),
        unit_ids=units["__i"],
        letter_ids=pl.Series("content_id", [], dtype=pl.String),
    )

    def result() -> tuple[object, ...]:
        p = partial.audit_bucket(rows, args)
        counts, lineage, by_market, by_language = (
            f[0].sort(f[0].columns) for f in (p.counts, p.lineage, p.populations, p.language_populations)
        )
        summaries = {
            k: (s.quantiles([0.1, 0.5, 0.9]), h.quantiles([0.5]), s.n, h.n) for k, (s, h) in p.summaries.items()
        }
        return (
            counts,
            summaries,
            p.items[0].sort(p.items[0].columns),
            p.labelled[0].sort("content_id", "market", "policy_id"),
            p.sor_rows[0].sort("content_id", "market", "policy_id"),
            lineage,
            by_market,
            by_language,
        )

    marked = result()
    assert "__live" in current_marks(rows)[1].columns  # the keys repeat
    dropping = partial.current_marks
    monkeypatch.setattr(partial, "current_marks", lambda *a, **k: dropping(*a, **{**k, "mark": False}))
    dropped = result()
    assert marked[0].equals(dropped[0]) and marked[0]["n"].sum() > 0  # type: ignore[attr-defined,index]
    assert marked[1] == dropped[1]
    for a, b in zip(marked[2:], dropped[2:], strict=True):
        assert a.columns == b.columns and a.equals(b)  # type: ignore[attr-defined]
    assert marked[3].height > 0 and marked[4].height > 0  # type: ignore[attr-defined]


def test_a_partial_ships_and_arrives_whole() -> None:
    """A partition's partial pickled (as Ray ships it, summaries packed) and unpickled equals the
    original: summaries, counts, items and population counts."""
    import pickle

    from pipelines.audit.partial import BucketArgs, audit_bucket

    rows = _decisions(n_items=400, seed=3)
    args = BucketArgs(
        before=T0 + timedelta(days=10), start=None, dims=("policy_id",), groups=("EU", "EEA", "GLOBAL"),
        unit_ids=pl.Series("__i", [], dtype=pl.UInt64), letter_ids=pl.Series("content_id", [], dtype=pl.String),
    )  # fmt: skip
    p = audit_bucket(rows, args)
    back = pickle.loads(pickle.dumps(p, protocol=5))
    assert list(back.summaries) == list(p.summaries) and p.summaries
    for key, (s, h) in p.summaries.items():
        s2, h2 = back.summaries[key]
        assert s.quantiles([0.1, 0.5, 0.99]) == s2.quantiles([0.1, 0.5, 0.99]) and s.n == s2.n
        assert h.quantiles([0.5, 0.9]) == h2.quantiles([0.5, 0.9]) and h.n == h2.n
    for name in ("counts", "lineage", "items", "populations", "language_populations"):
        assert getattr(back, name)[0].equals(getattr(p, name)[0])
    assert back.rows == p.rows


def test_distinct_items_per_group_count_an_item_once_whatever_its_markets() -> None:
    """Distinct items per policy × group from the per-market item lists equal a plain count of
    distinct (item, policy) per group, with items shown in several markets of one or more groups."""
    from pipelines import markets as mk
    from pipelines.audit.partial import _distinct_items

    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    markets = list(mk.ALL_MARKETS)
    rows = []
    for item in range(3000):
        for policy in ("hate", "scams"):
            for market in rng.choice(markets, size=int(rng.integers(1, 4)), replace=False):
                rows.append((f"c{item}", str(market), policy))
    frame = pl.DataFrame(rows, schema=["content_id", "market", "policy_id"], orient="row").with_columns(
        pl.col("content_id").hash(seed=11).alias("__c")
    )
    lists = frame.group_by("market", "policy_id").agg(pl.col("__c"))
    keys = lists.select("market", "policy_id").rows()
    groups = tuple(mk.GROUPS)
    got = _distinct_items(keys, lists["__c"], {"policy_id": pl.String()}, groups)
    mapping = pl.DataFrame([(m, g) for g in groups for m in mk.GROUPS[g]], schema=["market", "region"], orient="row")
    want = frame.join(mapping, on="market").group_by("policy_id", "region").agg(pl.col("content_id").n_unique())
    want = want.rename({"content_id": "items"}).with_columns(pl.col("items").cast(pl.Int64))
    assert got.sort("policy_id", "region").equals(want.sort("policy_id", "region").select(got.columns))


def test_region_group_codes_from_hashes_match_the_group_of_each_region() -> None:
    """The hashed lookup gives every market, an unknown region and a missing one the group the
    market lists say (EU, EEA outside the EU, anything else)."""
    from pipelines import markets as mk
    from pipelines.audit.strata import REGION_GROUPS, region_group_code

    regions = [*mk.ALL_MARKETS, "XX", "", "eu", None]
    got = pl.DataFrame({"region": regions}, schema={"region": pl.String}).select(region_group_code(pl.col("region")))
    want = ["EU" if r in mk.EU else "EEA_NON_EU" if r in mk.EEA else "OTHER" for r in regions]
    assert [REGION_GROUPS[c] for c in got.to_series().to_list()] == want


def test_the_period_filter_is_skipped_only_when_the_log_proves_every_row_in_it() -> None:
    """Files whose largest decided_at (log statistics, kept to the millisecond) falls before the
    period's end by more than a millisecond need no filter; an unknown maximum keeps it."""
    from pipelines.audit.run import _all_before

    end = T0 + timedelta(days=1)
    assert _all_before((T0, end - timedelta(milliseconds=2)), end)
    assert not _all_before((T0, end - timedelta(microseconds=500)), end)  # within the log's rounding
    assert not _all_before((T0, end), end) and not _all_before((T0, None), end) and not _all_before((), end)


def test_partitions_are_submitted_group_by_group_largest_first_within_each() -> None:
    """Ray gets the partitions group after group of the merge tree (each group's merge can run and
    free its partials while later groups are computed), the largest first within a group."""
    from pipelines.audit.buckets import FAN_IN, submission_order

    rows = [5, 9, 1, 9, 3, 7, 2, 8, 6, 4, 10, 1]
    order = submission_order(rows)
    assert sorted(order) == list(range(len(rows)))
    assert set(order[:FAN_IN]) == set(range(FAN_IN)) and set(order[FAN_IN:]) == set(range(FAN_IN, len(rows)))
    for lo in range(0, len(rows), FAN_IN):
        sizes = [rows[r] for r in order[lo : lo + FAN_IN]]
        assert sizes == sorted(sizes, reverse=True)


def test_columns_known_constant_leave_the_partition_result_unchanged() -> None:
    """A partition told which columns hold one value (the files' statistics) leaves them out of
    its cells' key: every sum it returns is the same."""
    from pipelines.audit.partial import BucketArgs, audit_bucket

    rows = _decisions(n_items=600, seed=11)
    args = BucketArgs(
        before=T0 + timedelta(days=10), start=None, dims=("policy_id", "content_type"), groups=("EU", "GLOBAL"),
        unit_ids=pl.Series("__i", [], dtype=pl.UInt64), letter_ids=pl.Series("content_id", [], dtype=pl.String),
    )  # fmt: skip
    one_value = frozenset(c for c in rows.columns if rows[c].dtype == pl.String and rows[c].n_unique() == 1)
    # content_type (a breakdown here) among them: a breakdown's column may be left out too.
    assert {"run_id", "model_name", "source", "content_type"} <= one_value and "model_version" not in one_value
    plain, told = audit_bucket(rows, args), audit_bucket(rows, args, constants=(one_value,))
    for name in ("counts", "lineage", "items", "populations", "language_populations"):
        a, b = getattr(plain, name)[0], getattr(told, name)[0]
        assert a.sort(a.columns).equals(b.sort(b.columns)) and a.height > 0, name
    assert {k: (s.n, h.n) for k, (s, h) in plain.summaries.items()} == {
        k: (s.n, h.n) for k, (s, h) in told.summaries.items()
    }
    # The statistics must be right: a column that varies, taken for constant, merges cells.
    wrong = audit_bucket(rows, args, constants=(one_value | {"model_version"},))
    assert not wrong.lineage[0].sort(wrong.lineage[0].columns).equals(plain.lineage[0].sort(plain.lineage[0].columns))
