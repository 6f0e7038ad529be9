"""The audit counts known-material matches per market × policy beside the model's detections, and
the review sample draws hash-matched decisions in strata of their own, so a policy decided by
banks alone (terrorist_content) gets a precision estimate (and, honestly, no recall)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines import markets as mk
from pipelines.audit import AuditConfig, SampleConfig, ingest_labels_from_ground_truth, sample_for_review
from pipelines.audit.accuracy import estimate_domains
from pipelines.audit.aggregate import SOURCE_COUNT_COLS
from pipelines.audit.html import render
from pipelines.audit.run import Computed, compute
from pipelines.audit.strata import HASH_BAND, score_band
from pipelines.current import current_decisions
from pipelines.lake import Lake
from pipelines.policy import load_default_pack
from pipelines.schema import DECISIONS, GROUND_TRUTH
from pipelines.sink import commit_once
from tests.unit.test_sweep_record import _lake

KEY = ["content_id", "market", "policy_id"]
PER_STRATUM = 4  # hash strata draw 2 × 4: smaller than the matched units of a region group
TERROR_FALSE = 6  # terrorist matches whose items do not violate (ground truth)


def _hash_rows(base: pl.DataFrame, policy: str, bank: str, action: str, at: datetime) -> pl.DataFrame:
    """Hash-match decision rows for the keys of ``base`` (columns as rematch writes them)."""
    pack = load_default_pack()
    return base.with_columns(
        pl.lit(policy).alias("policy_id"),
        pl.lit(pack.policy_version).alias("policy_version"),
        pl.lit(action).alias("action"),
        pl.lit(None, pl.Float32).alias("score"),
        pl.lit(None, pl.Float32).alias("threshold"),
        pl.lit("FULLY").alias("automated"),
        pl.lit("hash_match").alias("source"),
        pl.lit("rematch-test").alias("run_id"),
        pl.lit("pdq::3").alias("model_name"),
        pl.lit(f"hash:{bank}@3").alias("model_version"),
        pl.lit(at).dt.cast_time_unit("us").alias("decided_at"),
    ).select(DECISIONS.names)


def _add_matches(lake: Lake) -> pl.DataFrame:
    """Known-material matches over the model's decisions; returns ground truth per (content_id, policy_id)."""
    decisions = pl.read_delta(lake.path("decisions"))
    items = decisions.select("content_id").unique().sort("content_id")["content_id"].to_list()
    csam, terror = items[:30], items[40:120]
    at = datetime.now(UTC) - timedelta(seconds=3)  # every row decided before the audit's pin
    model_cs = decisions.filter((pl.col("policy_id") == "child_safety") & pl.col("content_id").is_in(csam))
    # terrorist_content has no model head: its only decisions are matches, one per market of the item.
    per_key = decisions.filter(pl.col("content_id").is_in(terror)).unique(["content_id", "market"]).sort(KEY)
    rows = [
        _hash_rows(model_cs, "child_safety", "known_csam", "remove", at),
        _hash_rows(per_key, "terrorist_content", "known_terror", "remove", at),
        # A retracted entry: its item's latest match is lifted (action none); no model decision stands under it.
        _hash_rows(per_key.filter(pl.col("content_id") == terror[-1]), "terrorist_content", "known_terror", "none",
                   at + timedelta(seconds=1)),
    ]  # fmt: skip
    commit_once(lake, "decisions", pl.concat(rows).to_arrow(), app_id="test/hash-matches")
    # A human review of one child-safety match in one market: a decision of record over it.
    record = decisions.filter((pl.col("policy_id") == "child_safety") & (pl.col("content_id") == csam[0])).head(1)
    record = record.with_columns(
        pl.lit("human_review").alias("source"),
        pl.lit("NOT_AUTOMATED").alias("automated"),
        pl.lit("remove").alias("action"),
        pl.lit(at + timedelta(seconds=2)).dt.cast_time_unit("us").alias("decided_at"),
    )
    commit_once(lake, "decisions", record.select(DECISIONS.names).to_arrow(), app_id="test/record")
    rng = np.random.default_rng(5)
    units = pl.concat(
        [decisions.select("content_id", "policy_id").unique(), pl.DataFrame({"content_id": terror}).with_columns(
            pl.lit("terrorist_content").alias("policy_id"))]
    ).sort("content_id", "policy_id")  # fmt: skip
    false_terror = set(terror[:TERROR_FALSE])
    labels = [
        (c not in false_terror) if p == "terrorist_content" else (c in csam if p == "child_safety" else v)
        for c, p, v in zip(units["content_id"], units["policy_id"], rng.random(units.height) < 0.2, strict=True)
    ]
    truth = units.with_columns(
        pl.Series("label", labels, dtype=pl.Boolean),
        pl.lit("test").alias("family"),
        pl.lit("none").alias("signal"),
        pl.lit("heldout").alias("split"),
    ).select(GROUND_TRUTH.names)
    commit_once(lake, "ground_truth", truth.to_arrow(), app_id="test/ground-truth")
    return truth.select("content_id", "policy_id", "label")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, pl.DataFrame, Computed]:
    lake = _lake(tmp_path_factory.mktemp("hash-audit") / "lake")
    truth = _add_matches(lake)
    sample_for_review(SampleConfig(lake=lake, per_stratum=PER_STRATUM, seed=2, use_ray=False))
    ingest_labels_from_ground_truth(lake)
    # Three buckets, one after the other: the counts are sums of the buckets' cells.
    return lake, truth, compute(AuditConfig(lake=lake, use_ray=False, buckets=3), statements=False)


def _current(lake: Lake) -> pl.DataFrame:
    """The direct query: the one current-decision rule over the whole decisions table."""
    return current_decisions(pl.scan_delta(lake.path("decisions"))).collect()


def _direct_counts(current: pl.DataFrame) -> pl.DataFrame:
    acted = pl.col("action") != "none"
    return current.group_by(pl.col("market").alias("region"), "policy_id").agg(
        pl.len().alias("decisions"),
        (pl.col("source") == "model").sum().alias("model_decisions"),
        ((pl.col("source") == "model") & acted).sum().alias("model_detections"),
        (pl.col("source") == "hash_match").sum().alias("hash_matches"),
        ((pl.col("source") == "hash_match") & acted).sum().alias("hash_matches_actioned"),
        pl.col("source").is_in(["human_review", "appeal"]).sum().alias("decisions_of_record"),
    )


def test_hash_matches_per_market_and_policy_equal_a_direct_count(
    audited: tuple[Lake, pl.DataFrame, Computed],
) -> None:
    lake, _, c = audited
    cols = ["decisions", *SOURCE_COUNT_COLS]
    current = _current(lake)
    want = _direct_counts(current).sort("region", "policy_id")
    got = c.rows.filter(pl.col("region_kind") == "market").select("region", "policy_id", *cols)
    got = got.filter(pl.col("decisions") > 0).sort("region", "policy_id")
    assert_frame_equal(got, want.select(got.columns).cast(got.schema))
    # The fixture covers what the counts must tell apart: two bank policies, several markets,
    # model decisions under hash matches, a lifted match and a decision of record.
    assert got.filter(pl.col("hash_matches") > 0)["policy_id"].unique().sort().to_list() == [
        "child_safety", "terrorist_content",
    ]  # fmt: skip
    assert got.filter(pl.col("policy_id") == "terrorist_content")["region"].n_unique() >= 2
    assert int((got["hash_matches"] - got["hash_matches_actioned"]).sum()) > 0
    assert int(got["decisions_of_record"].sum()) == 1
    cs = got.filter(pl.col("policy_id") == "child_safety")
    assert int(cs["model_detections"].sum()) > 0 and int(cs["hash_matches"].sum()) > 0
    # Every current decision counts under exactly one source.
    total = sum(pl.col(k) for k in ("model_decisions", "hash_matches", "decisions_of_record"))
    assert c.rows.select((total == pl.col("decisions")).all()).item()
    # Group rows are the sums of their member markets (each item × market decision once).
    eu = c.rows.filter((pl.col("region") == "EU") & (pl.col("policy_id") == "terrorist_content"))
    members = got.filter(pl.col("region").is_in(list(mk.GROUPS["EU"])) & (pl.col("policy_id") == "terrorist_content"))
    assert eu.height == 1
    for col in cols:
        assert eu[col].item() == members[col].sum(), col


def test_review_sample_draws_hash_matches_in_strata_of_their_own(
    audited: tuple[Lake, pl.DataFrame, Computed],
) -> None:
    lake, _, _ = audited
    drawn = pl.read_delta(lake.path("review_samples"))
    split = pl.col("stratum").str.split("|")
    parts = drawn.with_columns(
        split.list.get(1).alias("g"), split.list.get(2).alias("band"), split.list.get(3).alias("chg")
    )
    # Units of the matched items, from the current decisions: a unit is in the hash band when any
    # of its markets' current decision is a match.
    current = _current(lake)
    units = current.group_by("content_id", "policy_id").agg(
        (pl.col("source") == "hash_match").any().alias("matched"), pl.col("region").first()
    )
    joined = parts.join(units, on=["content_id", "policy_id"], how="left")
    assert joined["matched"].null_count() == 0
    assert joined.select(((pl.col("band") == HASH_BAND) == pl.col("matched")).all()).item()
    terror = joined.filter(pl.col("policy_id") == "terrorist_content")
    assert terror.height > 0 and set(terror["band"]) == {HASH_BAND}
    # Hash strata are oversampled (2 × per stratum) and their inclusion probabilities are n_h / N_h.
    sizes = units.filter(pl.col("policy_id") == "terrorist_content").with_columns(
        pl.col("region").replace_strict({m: "EU" for m in mk.EU}, default="OTHER").alias("g")
    )
    stable = terror.filter(pl.col("chg") == "stable").group_by("g").agg(pl.len().alias("n"), pl.col("stratum_size").first(),
                                                                        pl.col("inclusion_prob").first())  # fmt: skip
    big = sizes.group_by("g").agg(pl.len().alias("N"))
    for _g, n, size, prob in stable.iter_rows():
        assert n == min(2 * PER_STRATUM, size) and prob == pytest.approx(n / size)
    assert int(stable["stratum_size"].sum()) == int(big["N"].sum()) - 1  # the lifted unit is "changed"
    assert (stable["n"] < stable["stratum_size"]).any()  # a real draw, not the whole stratum


def test_a_bank_only_policy_gets_a_precision_estimate_and_no_recall(
    audited: tuple[Lake, pl.DataFrame, Computed],
) -> None:
    lake, truth, c = audited
    rows = c.rows.filter(pl.col("policy_id") == "terrorist_content")
    assert rows.height > 0
    shown = rows.filter(pl.col("precision_n") > 0)
    assert shown.height >= 2  # markets and groups
    assert shown["precision"].null_count() == 0
    assert shown.select(((pl.col("precision_low") <= pl.col("precision")) &
                         (pl.col("precision") <= pl.col("precision_high"))).all()).item()  # fmt: skip
    assert shown["recall"].null_count() == shown.height  # what a bank misses is never decided
    # A market domain: one decision per unit, so the estimate is the share of violating labelled
    # units among its actioned matches (one fine cell: equal weights).
    labelled = pl.read_delta(lake.path("review_samples")).join(truth, on=["content_id", "policy_id"])
    current = _current(lake).filter((pl.col("policy_id") == "terrorist_content") & (pl.col("action") != "none"))
    checked = 0
    for market, precision, n in shown.filter(pl.col("region_kind") == "market").select(
        "region", "precision", "precision_n"
    ).iter_rows():  # fmt: skip
        ids = current.filter(pl.col("market") == market)["content_id"]
        mine = labelled.filter(pl.col("content_id").is_in(ids.implode()) & (pl.col("policy_id") == "terrorist_content"))
        regions = current.filter(pl.col("content_id").is_in(mine["content_id"].implode()))["region"].unique()
        if regions.len() == 1:  # one origin region group: one fine cell
            assert n == mine.height
            assert precision == pytest.approx(mine["label"].mean())
            checked += 1
    assert checked >= 2
    # Model policies keep their recall; their rows are untouched by the hash band.
    hate = c.rows.filter((pl.col("policy_id") == "hate") & (pl.col("recall_n") > 0))
    assert hate.height > 0 and hate["precision"].null_count() == 0 and hate["recall"].null_count() == 0


def test_html_shows_hash_matches_beside_model_detections(audited: tuple[Lake, pl.DataFrame, Computed]) -> None:
    _, _, c = audited
    html = render(c, statements=0)
    section = html[html.index("Hash matches and model detections per region × policy") :]
    assert "model detections" in section and "hash matches actioned" in section
    assert "terrorist_content" in section


def test_hash_band_is_its_own_cell_for_the_estimators() -> None:
    # A model decision with no score stays in the lowest band; a hash match (no score) is banded apart.
    frame = pl.DataFrame({"score": [None, 0.95, None], "source": ["model", "model", "hash_match"]},
                         schema={"score": pl.Float32, "source": pl.String})  # fmt: skip
    bands = frame.select(score_band(pl.col("score"), pl.col("source")).alias("band"))["band"].to_list()
    assert bands == ["0.0-0.3", "0.9-1.0", HASH_BAND]
    # Precision of the hash cell is its weighted violation rate, not pooled with low model scores.
    cells = {"region_group": ["EU", "EU"], "score_band": [HASH_BAND, "0.0-0.3"], "changed": [False, False],
             "flagged": [True, False]}  # fmt: skip
    pop = pl.DataFrame({"d": ["a", "a"], **cells, "m": [100, 900]})
    units = pl.DataFrame(
        {"d": "a", "region_group": "EU", "score_band": [HASH_BAND] * 4 + ["0.0-0.3"] * 4, "changed": False,
         "flagged": [True] * 4 + [False] * 4, "content_id": [f"c{i}" for i in range(8)],
         "y": [True, True, True, False, True, False, False, False]}
    )  # fmt: skip
    est = estimate_domains(pop, units, ["d"], draws=500, seed=1)
    assert est["precision"].item() == pytest.approx(0.75)
    assert est["recall"].item() == pytest.approx(75 / (75 + 225))
    only_hash = estimate_domains(pop.head(1), units.head(4), ["d"], draws=500, seed=1)
    assert only_hash["precision"].item() == pytest.approx(0.75) and only_hash["recall"].item() is None
