"""The sweep's transition counts computed straight from the old/new pairs equal the counts of
the per-scope item states (markets and groups, multi-market items reduced to their most severe
action per group)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.markets import ALL_MARKETS
from pipelines.sweep.transitions import SEVERITY, item_states, matrix, pairs, transition_matrix


def _decisions(rng: np.random.Generator, n: int, markets: list[str]) -> pl.DataFrame:
    ids = rng.integers(0, n // 3, n)  # repeated ids: many items decided in several markets
    return pl.DataFrame(
        {
            "content_id": [f"c{i}" for i in ids],
            "market": rng.choice(markets, n).tolist(),
            "policy_id": rng.choice(["hate", "scams"], n).tolist(),
            "action": rng.choice(list(SEVERITY), n).tolist(),
        }
    ).unique(["content_id", "market", "policy_id"], keep="first")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_direct_counts_equal_the_counts_of_item_states(seed: int) -> None:
    rng = np.random.default_rng(seed)
    markets = list(ALL_MARKETS)
    new = _decisions(rng, 3000, markets)
    old = _decisions(rng, 2500, markets)  # some keys have no old decision: they start from none
    p = pairs(old, new)
    assert p["content_id"].is_duplicated().any()
    assert transition_matrix(p).equals(matrix(item_states(p)))


def test_empty_pairs() -> None:
    empty = pl.DataFrame(
        schema={"content_id": pl.String, "market": pl.String, "policy_id": pl.String, "action": pl.String}
    )
    p = pairs(empty, empty)
    assert transition_matrix(p).equals(matrix(item_states(p)))
