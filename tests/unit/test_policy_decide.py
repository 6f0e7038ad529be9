"""decide(): per-market semantics, agreement with a row-at-a-time reference, and properties."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import markets as mk
from pipelines.errors import BadInputError
from pipelines.policy import OUTPUT_COLUMNS, Pack, decide, load_default_pack, load_pack, validate
from pipelines.schema import ACTIONS, AUTOMATED, DECISIONS

BASE = Path(__file__).with_name("test_policy_base.yaml")
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MARKET_CHOICES = (*mk.ALL_MARKETS, "ZZ", "YY")  # two codes no pack can name
TIERS = ("review", "label", "demote", "age_restrict", "remove")


def base_pack() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text())


def one_policy_pack(thresholds: dict[str, dict[str, float]], tiers: tuple[str, ...] = TIERS) -> Pack:
    """A pack with one policy ``p`` reading head ``h``."""
    doc = base_pack()
    p = doc["policies"][0]
    p.update(id="p", head="h", thresholds=thresholds)
    p["tiers"] = [{"action": a, "fully_automated": i % 2 == 0} for i, a in enumerate(tiers)]
    doc["policies"] = [p]
    return validate(doc, source="test")


def shared_head_pack() -> Pack:
    """Two policies on one head, plus region and market conditions (exercises every path)."""
    doc = base_pack()
    tos = dict(doc["policies"][1], id="hate_tos", head="hate")
    tos["conditions"] = {"regions": ["EEA"], "markets": ["EU", "US"]}
    doc["policies"].append(tos)
    doc["policies"][0]["thresholds"]["EEA"] = {"remove": 0.8}
    doc["policies"][0]["thresholds"]["FR"] = {"review": 0.3}
    return validate(doc, source="test")


PACKS = {"default": load_default_pack(), "election-eu": load_pack("election-eu"), "shared": shared_head_pack()}


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "content_id": pl.String,
            "policy_id": pl.String,
            "score": pl.Float32,
            "region": pl.String,
            "markets": pl.List(pl.String),
        },
    )


def reference(scores: pl.DataFrame, pack: Pack) -> list[tuple[Any, ...]]:
    """Row-at-a-time semantics, written from the docs, not from the implementation."""
    out = []
    for row in scores.iter_rows(named=True):
        listed = [m for m in (row.get("markets") or []) if m is not None]
        markets = list(dict.fromkeys(listed)) or [row["region"]]
        for market in markets:
            for policy in pack.policies:
                if policy.head != row["policy_id"]:
                    continue
                action, threshold, automated = "none", None, "FULLY"
                if policy.conditions.holds(row["region"], market) and row["score"] is not None:
                    resolved = policy.thresholds_for(market)
                    for tier in policy.tiers:
                        if np.float32(row["score"]) >= np.float32(resolved[tier.action]):
                            action, threshold = tier.action, float(np.float32(resolved[tier.action]))
                            automated = "FULLY" if tier.fully_automated else "PARTIALLY"
                out.append((row["content_id"], market, policy.id, action, threshold, automated))
    return out


def observed(out: pl.DataFrame) -> list[tuple[Any, ...]]:
    return list(out.select("content_id", "market", "policy_id", "action", "threshold", "automated").iter_rows())


def score_rows(heads: tuple[str, ...]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries(
        {
            "content_id": st.sampled_from([f"c{i}" for i in range(8)]),
            "policy_id": st.sampled_from((*heads, "not_a_head")),
            "score": st.one_of(st.none(), st.floats(0, 1, width=32)),
            "region": st.sampled_from((*mk.ALL_MARKETS, "ZZ")),
            "markets": st.one_of(st.none(), st.lists(st.sampled_from(MARKET_CHOICES), max_size=4)),
        }
    )
    return st.lists(row, max_size=25)


# -- examples ----------------------------------------------------------------------------


def test_one_row_per_market_and_policy_with_none_included() -> None:
    pack = PACKS["default"]
    scores = frame(
        [
            {"content_id": "a", "policy_id": "hate", "score": 0.82, "region": "US", "markets": ["US", "DE", "US"]},
            {"content_id": "a", "policy_id": "personal_data", "score": 0.95, "region": "US", "markets": ["US", "DE"]},
            {"content_id": "b", "policy_id": "personal_data", "score": 0.95, "region": "FR", "markets": None},
            {"content_id": "c", "policy_id": "personal_data", "score": 0.95, "region": "FR", "markets": ["GB", "BR"]},
        ]
    )
    out = decide(scores, pack)
    assert observed(out) == [
        ("a", "US", "hate", "demote", pytest.approx(0.75), "FULLY"),
        ("a", "DE", "hate", "remove", pytest.approx(0.8), "PARTIALLY"),  # DE override beats EU
        ("a", "US", "cross_border_data", "none", None, "FULLY"),  # inside the US zone
        ("a", "DE", "cross_border_data", "remove", pytest.approx(0.9), "PARTIALLY"),  # US data in DE
        ("b", "FR", "cross_border_data", "none", None, "FULLY"),  # markets null -> [region]
        ("c", "GB", "cross_border_data", "none", None, "FULLY"),  # GB shares the EEA zone
        ("c", "BR", "cross_border_data", "remove", pytest.approx(0.9), "PARTIALLY"),
    ]
    assert out["policy_version"].unique().to_list() == ["trustbatch-default@1.2.0"]
    assert out["source"].unique().to_list() == ["model"]


def test_output_columns_are_decision_columns_plus_passthrough() -> None:
    scores = frame([{"content_id": "a", "policy_id": "hate", "score": 0.1, "region": "DE", "markets": ["DE"]}])
    scores = scores.with_columns(pl.lit(7, dtype=pl.Int64).alias("chunk_id"), pl.lit("x").alias("language"))
    out = decide(scores, PACKS["default"])
    assert out.columns == [*OUTPUT_COLUMNS, "region", "chunk_id", "language"]
    assert set(OUTPUT_COLUMNS) <= set(DECISIONS.names)
    assert out.schema["score"] == pl.Float32 and out.schema["threshold"] == pl.Float32
    assert out.row(0, named=True)["chunk_id"] == 7


def test_score_equal_to_threshold_acts() -> None:
    pack = one_policy_pack(
        {"default": {"review": 0.1, "label": 0.2, "demote": 0.3, "age_restrict": 0.7, "remove": 0.9}}
    )
    scores = frame([{"content_id": "a", "policy_id": "h", "score": 0.7, "region": "US", "markets": None}])
    assert decide(scores, pack)["action"].to_list() == ["age_restrict"]


def test_empty_input_gives_empty_output() -> None:
    out = decide(frame([]), PACKS["default"])
    assert out.height == 0 and out.columns[: len(OUTPUT_COLUMNS)] == list(OUTPUT_COLUMNS)


def test_without_markets_column_decides_in_the_region() -> None:
    scores = pl.DataFrame({"content_id": ["a"], "policy_id": ["hate"], "score": [0.86], "region": ["FR"]})
    assert observed(decide(scores, PACKS["default"])) == [
        ("a", "FR", "hate", "remove", pytest.approx(0.85), "PARTIALLY")
    ]


def test_bad_inputs_are_refused_with_the_reason() -> None:
    pack = PACKS["default"]
    with pytest.raises(BadInputError, match="lack column"):
        decide(pl.DataFrame({"content_id": ["a"], "policy_id": ["hate"], "score": [0.5]}), pack)
    clash = frame([]).with_columns(pl.lit("x").alias("action"))
    with pytest.raises(BadInputError, match="action"):
        decide(clash, pack)
    nowhere = frame([{"content_id": "zz1", "policy_id": "hate", "score": 0.5, "region": None, "markets": []}])
    with pytest.raises(BadInputError, match="zz1"):
        decide(nowhere, pack)


def test_null_elements_inside_markets_are_ignored() -> None:
    scores = frame([{"content_id": "a", "policy_id": "hate", "score": 0.5, "region": "US", "markets": [None, "DE"]}])
    assert decide(scores, PACKS["default"])["market"].to_list() == ["DE"]


def test_transfer_zone_ids_partition_the_markets() -> None:
    """decide compares zone ids; that is exact only if transfer zones are a partition."""
    for a in mk.ALL_MARKETS:
        for b in mk.ALL_MARKETS:
            assert (b in mk.transfer_zone(a)) == (mk.transfer_zone(a) == mk.transfer_zone(b))


# -- properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PACKS))
@SETTINGS
@given(data=st.data())
def test_matches_row_at_a_time_reference(name: str, data: st.DataObject) -> None:
    pack = PACKS[name]
    scores = frame(data.draw(score_rows(pack.heads)))
    out = decide(scores, pack)
    assert observed(out) == reference(scores, pack)
    assert set(out["action"].unique()) <= set(ACTIONS)
    assert set(out["automated"].unique()) <= set(AUTOMATED)


@st.composite
def raised_thresholds(draw: st.DrawFn) -> tuple[dict[str, float], dict[str, float]]:
    """Increasing thresholds, and the same raised tier by tier (still increasing)."""
    values = sorted(draw(st.sets(st.integers(0, 500), min_size=len(TIERS), max_size=len(TIERS))))
    bumps = sorted(draw(st.lists(st.integers(0, 500), min_size=len(TIERS), max_size=len(TIERS))))
    old = {a: v / 1000 for a, v in zip(TIERS, values, strict=True)}
    new = {a: (v + b) / 1000 for a, v, b in zip(TIERS, values, bumps, strict=True)}
    return old, new


@SETTINGS
@given(pair=raised_thresholds(), rows=score_rows(("h",)))
def test_raising_a_threshold_never_turns_none_into_an_action(
    pair: tuple[dict[str, float], dict[str, float]], rows: list[dict[str, Any]]
) -> None:
    old, new = pair
    scores = frame(rows)
    before = decide(scores, one_policy_pack({"default": old}))
    after = decide(scores, one_policy_pack({"default": new}))
    rank = {a: i for i, a in enumerate(ACTIONS)}
    for a, b in zip(before["action"], after["action"], strict=True):
        assert rank[b] <= rank[a]  # never more severe; in particular none stays none


@SETTINGS
@given(group=st.sampled_from(sorted(mk.GROUPS)), value=st.integers(30, 59), rows=score_rows(("h",)))
def test_group_override_expands_to_exactly_its_members(group: str, value: int, rows: list[dict[str, Any]]) -> None:
    pack = one_policy_pack(
        {"default": {"review": 0.6, "remove": 0.9}, group: {"review": value / 100}}, tiers=("review", "remove")
    )
    for market in MARKET_CHOICES:
        expected = value / 100 if market in mk.GROUPS[group] else 0.6
        assert pack.policy("p").thresholds_for(market)["review"] == expected
    # ...and decide uses exactly that: one item distributed everywhere, scored just at the override.
    scores = frame(
        [{"content_id": "a", "policy_id": "h", "score": value / 100, "region": "US", "markets": list(MARKET_CHOICES)}]
    )
    out = decide(scores, pack)
    reviewed = set(out.filter(pl.col("action") == "review")["market"])
    assert reviewed == set(mk.GROUPS[group])


@SETTINGS
@given(keys=st.sets(st.sampled_from((*mk.GROUPS, *mk.ALL_MARKETS)), max_size=6), rows=score_rows(("h",)))
def test_market_outside_every_override_uses_the_default(keys: set[str], rows: list[dict[str, Any]]) -> None:
    default = {"review": 0.5, "remove": 0.9}
    table: dict[str, dict[str, float]] = {"default": default, **{k: {"review": 0.55, "remove": 0.95} for k in keys}}
    pack = one_policy_pack(table, tiers=("review", "remove"))
    covered = {m for k in keys for m in mk.expand(k)}
    outside = [m for m in MARKET_CHOICES if m not in covered]
    assert "ZZ" in outside
    scores = frame([{"content_id": "a", "policy_id": "h", "score": 0.52, "region": "US", "markets": outside}])
    out = decide(scores, pack)
    assert out["action"].to_list() == ["review"] * len(outside)
    assert out["threshold"].to_list() == [pytest.approx(0.5)] * len(outside)


@pytest.mark.parametrize("name", sorted(PACKS))
@SETTINGS
@given(data=st.data())
def test_results_do_not_depend_on_row_order(name: str, data: st.DataObject) -> None:
    pack = PACKS[name]
    scores = frame(data.draw(score_rows(pack.heads)))
    order = data.draw(st.permutations(range(scores.height)))
    a = decide(scores, pack).sort(pl.all())
    b = decide(scores[list(order)] if scores.height else scores, pack).sort(pl.all())
    assert a.equals(b)


@pytest.mark.parametrize("name", sorted(PACKS))
@SETTINGS
@given(data=st.data())
def test_many_small_batches_give_the_rows_of_one_batch(name: str, data: st.DataObject) -> None:
    pack = PACKS[name]
    scores = frame(data.draw(score_rows(pack.heads)))
    cuts = sorted(data.draw(st.lists(st.integers(0, scores.height), max_size=5)))
    bounds = [0, *cuts, scores.height]
    parts = [decide(scores[lo:hi], pack) for lo, hi in itertools.pairwise(bounds)]
    assert pl.concat(parts).equals(decide(scores, pack))
