"""The audit's fast "current decision per key" (pipelines.audit.current.current_marks) against the
one definition of it (pipelines.current.current_decisions), on fresh random tables: repeated keys,
ties in commit time, hash matches (lifted or not), and two keys sharing a hash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.audit import current as audit_current
from pipelines.audit.current import current_marks, unit_hash
from pipelines.current import current_decisions
from pipelines.schema import DECISION_KEY

KEY = list(DECISION_KEY)


def _decisions(rng: np.random.Generator, *, sources: list[str], instants: int | None) -> pl.DataFrame:
    """Rows of few items, so keys repeat; ``instants``: how many distinct commit times (few: ties,
    broken by policy version, model version, run id; None: every row its own)."""
    n = int(rng.integers(800, 2500))
    base = datetime(2026, 3, 1, tzinfo=UTC)
    seconds = rng.permutation(n) if instants is None else rng.integers(0, instants, n)
    return pl.DataFrame(
        {
            "content_id": [f"c{int(i)}" for i in rng.integers(0, n // 4, n)],
            "market": rng.choice(["DE", "FR", "US"], n).tolist(),
            "policy_id": rng.choice(["hate", "scams"], n).tolist(),
            "source": rng.choice(sources, n).tolist(),
            "action": rng.choice(["none", "remove", "restrict"], n).tolist(),
            "decided_at": [base + timedelta(seconds=int(s)) for s in seconds],
            "policy_version": rng.choice(["1.0", "1.1"], n).tolist(),
            "model_version": rng.choice(["1", "2"], n).tolist(),
            # Distinct: a run commits one decision per key, so ties end at the run id.
            "run_id": [f"r{int(r)}" for r in rng.permutation(n)],
            "score": rng.random(n).astype(np.float32),
        }
    ).with_row_index("row")


def _expected(rows: pl.DataFrame) -> tuple[set[int], set[tuple[str, str]]]:
    """Current rows (by row number) and changed units, by the one definition."""
    current = current_decisions(rows.lazy()).collect()
    changed = rows.group_by(KEY).agg(pl.col("action").n_unique().alias("k")).filter(pl.col("k") > 1)
    return set(current["row"].to_list()), set(changed.select("content_id", "policy_id").iter_rows())


def _got(rows: pl.DataFrame) -> tuple[set[int], set[tuple[str, str]]]:
    kept, marks = current_marks(rows)
    live = marks["__live"] if "__live" in marks.columns else pl.Series([True] * rows.height)
    current = set(kept.filter(live)["row"].to_list())
    units = rows.with_columns(unit_hash(pl.col("content_id"), pl.col("policy_id")).alias("__i"))
    changed = units.filter(marks["changed"]).select("content_id", "policy_id").unique()
    return current, set(changed.iter_rows())


@pytest.mark.parametrize(
    ("sources", "instants"),
    [
        (["model", "human_review", "appeal"], 10**6),  # no ties: the numeric path
        (["model", "human_review", "appeal"], 3),  # ties in commit time: the exact path
        (["model", "hash_match", "human_review"], 10**6),  # hash matches: the exact path
    ],
)
def test_current_rows_and_changed_units_equal_the_definition(sources: list[str], instants: int) -> None:
    rng = np.random.default_rng()
    rows = _decisions(rng, sources=sources, instants=instants)
    assert _got(rows) == _expected(rows)


def test_two_keys_sharing_a_hash_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numeric path groups rows by key hash: a hash shared by two keys must send the rows
    down the exact path, which groups by the key's columns."""
    rng = np.random.default_rng()
    rows = _decisions(rng, sources=["model", "human_review", "appeal"], instants=None)
    current, changed = _expected(rows)
    units = rows.select(unit_hash(pl.col("content_id"), pl.col("policy_id")).alias("__i")).to_series()
    changed_units = set(
        pl.DataFrame(list(changed), schema=["content_id", "policy_id"], orient="row")
        .select(unit_hash(pl.col("content_id"), pl.col("policy_id")))
        .to_series()
        .to_list()
    )
    exact: list[int] = []
    resolve = audit_current._resolve
    monkeypatch.setattr(audit_current, "_resolve", lambda multi: (exact.append(1), resolve(multi))[1])
    # Two items decided in a same market and policy: forged, their keys there share a hash.
    pairs = rows.group_by("market", "policy_id").agg(pl.col("content_id").unique().sort().head(2))
    pair = pairs.filter(pl.col("content_id").list.len() == 2).sort("market", "policy_id").row(0)[2]
    a, b = pair[0], pair[1]
    every_row = pl.Series("at", range(rows.height), dtype=pl.UInt32)  # as if every key repeated
    for item, taken in ((pl.col("content_id"), []), (pl.col("content_id").replace(b, a), [1])):
        key = rows.select(_key_hash(item).alias("__k")).to_series()  # forged: b's keys take a's hashes
        won, units_changed = audit_current._resolve_repeated(rows, units, key, every_row)
        assert set(won.to_list()) == current
        assert set(units_changed.to_list()) == changed_units
        assert exact == taken


def _key_hash(item: pl.Expr) -> pl.Expr:
    """The key hash current_marks gives a row (its seeds), of ``item`` for the row's item."""
    return item.hash(seed=11) ^ (pl.col("policy_id").hash(seed=13) ^ pl.col("market").hash(seed=17))
