"""A sweep never overrides a decision of record, and its per-bucket passes add up to one pass."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.current import current_decisions
from pipelines.lake import Lake, open_lake
from pipelines.policy import load_default_pack, load_pack, record_pack
from pipelines.scoring.commit import ChunkWriter, Lineage, scores_long
from pipelines.sink import commit_once
from pipelines.sweep import SweepConfig, run_sweep

KEY = ["content_id", "market", "policy_id"]
ITEMS = 400


def _lake(root: Path) -> Lake:
    """ITEMS items in EU markets with stored scores and default-pack decisions (no model, no Ray)."""
    from pipelines.tracking import experiment_id

    lake = open_lake(str(root))
    pack = load_default_pack()
    rng = np.random.default_rng(7)
    regions = rng.choice(np.array(["DE", "FR", "IT", "US"]), ITEMS).tolist()
    rows = pl.DataFrame(
        {
            "content_id": [f"c{i:05d}" for i in range(ITEMS)],
            "head_scores": rng.beta(0.7, 1.5, (ITEMS, len(pack.heads))).astype(np.float32).tolist(),
            "created_at": [datetime(2026, 3, 1, tzinfo=UTC)] * ITEMS,
            "region": regions,
            "markets": [[r, "NL"] for r in regions],
            "language": ["en"] * ITEMS,
            "content_type": ["TEXT"] * ITEMS,
            "content_sha256": ["0" * 64] * ITEMS,
            "chunk_id": [0] * ITEMS,
        }
    )
    record_pack(lake, pack, run_id="test-run")
    experiment_id(lake)
    writer = ChunkWriter(lake, Lineage("t", "test-run", "starter", "1", 0, pack.policy_version, "synthetic"), pack)
    long = scores_long(rows, pack.heads, pack)
    writer.scores(long, 0)
    writer.decisions(long, 0)
    return lake


def _current(lake: Lake) -> pl.DataFrame:
    return current_decisions(pl.scan_delta(lake.path("decisions"))).collect().sort(KEY)


def _record(lake: Lake, keys: pl.DataFrame, source: str, action: str) -> None:
    """Decisions of record for ``keys`` (copies of their current rows with another source and action)."""
    rows = keys.with_columns(
        pl.lit(action).alias("action"),
        pl.lit("NOT_AUTOMATED").alias("automated"),
        pl.lit(source).alias("source"),
        pl.lit(f"{source}-ref").alias("run_id"),
        pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias("decided_at"),
    )
    commit_once(lake, "decisions", rows.to_arrow(), app_id=f"test/{source}")


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Lake, pl.DataFrame]:
    """(a lake swept after some keys got decisions of record, the same lake swept without them, the held keys)."""
    plain = _lake(tmp_path_factory.mktemp("plain") / "lake")
    held_lake = _lake(tmp_path_factory.mktemp("held") / "lake")
    cur = _current(held_lake).filter(
        (pl.col("policy_id") == "misinformation") & pl.col("market").is_in(["DE", "FR", "IT", "NL"])
    )
    reviewed, appealed = cur.slice(0, 60), cur.slice(60, 40)
    _record(held_lake, reviewed, "human_review", "none")
    _record(held_lake, appealed, "appeal", "remove")
    held = pl.concat([reviewed, appealed]).select(KEY)
    for lake in (plain, held_lake):
        run_sweep(SweepConfig(lake=lake, policy="election-eu", use_ray=False))
    return held_lake, plain, held


def test_keys_of_record_are_left_as_they_were(lakes: tuple[Lake, Lake, pl.DataFrame]) -> None:
    lake, _, held = lakes
    new = load_pack("election-eu").policy_version
    rows = pl.read_delta(lake.path("decisions"))
    swept = rows.filter(pl.col("policy_version") == new)
    assert swept.height > 0
    assert swept.join(held, on=KEY, how="semi").height == 0  # no sweep row for a held key
    now = _current(lake).join(held, on=KEY, how="semi")
    assert now.height == held.height
    assert set(now["source"].unique().to_list()) == {"human_review", "appeal"}
    assert now.filter(pl.col("source") == "appeal")["action"].unique().to_list() == ["remove"]


def test_held_keys_are_not_counted_as_transitions(lakes: tuple[Lake, Lake, pl.DataFrame]) -> None:
    lake, plain, held = lakes
    report = Path(lake.reports)
    summ = pl.read_parquet(next(report.glob("sweep-*")) / "summary.parquet")
    base = pl.read_parquet(next(Path(plain.reports).glob("sweep-*")) / "summary.parquet")
    per_market = held.group_by("market").len()
    for market, n in per_market.iter_rows():
        got = summ.filter((pl.col("scope") == market) & (pl.col("policy_id") == "misinformation"))
        want = base.filter((pl.col("scope") == market) & (pl.col("policy_id") == "misinformation"))
        assert got["items"].item() == want["items"].item() - n, market


def test_buckets_add_up_to_one_pass(lakes: tuple[Lake, Lake, pl.DataFrame], tmp_path: Path) -> None:
    _, plain, _ = lakes
    # A dry run of the (already swept) plain lake re-decides against the pre-sweep decisions.
    one = run_sweep(SweepConfig(lake=plain, policy="election-eu", dry_run=True, use_ray=False, buckets=1))
    five = run_sweep(SweepConfig(lake=plain, policy="election-eu", dry_run=True, use_ray=False, buckets=5))
    assert one.summary.height > 0
    assert five.summary.equals(one.summary)
    assert five.matrix.equals(one.matrix)
    assert five.plan.score_rows == one.plan.score_rows > 0
