"""Statements of reasons describe each decision by what took it: a classifier, a known-material
match, a human reviewer or an appeal (never a decision of record as a classifier's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import polars as pl

from pipelines.audit.sor import build, restrictive_rows
from pipelines.policy import load_default_pack

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "pipelines" / "dsa_statement.schema.json").read_text())
CLASSIFIER = "detected by an automated classifier"


def _rows(sources: dict[str, tuple[str, str, str]]) -> pl.DataFrame:
    """content_id -> (source, action, automated), one DE hate decision each."""
    pack = load_default_pack()
    ids = sorted(sources)
    return pl.DataFrame(
        {
            "content_id": ids,
            "market": "DE",
            "policy_id": "hate",
            "policy_version": pack.policy_version,
            "action": [sources[i][1] for i in ids],
            "automated": [sources[i][2] for i in ids],
            "model_name": "starter",
            "model_version": "3",
            "created_at": datetime(2026, 3, 1, tzinfo=UTC),
            "decided_at": datetime(2026, 4, 2, tzinfo=UTC),
            "content_type": "IMAGE",
            "source": [sources[i][0] for i in ids],
        }
    )


def _statements(rows: pl.DataFrame) -> dict[str, dict[str, object]]:
    pack = load_default_pack()
    st, skipped = build(restrictive_rows(rows.lazy()).collect(), {pack.policy_version: (pack, pack.sha256)})
    assert skipped == 0
    validator = jsonschema.Draft202012Validator(SCHEMA)
    out = {}
    for row, cid in zip(st.to_dicts(), sorted(set(rows["content_id"].to_list())), strict=True):
        present = {k: v for k, v in row.items() if v is not None}
        assert not list(validator.iter_errors(present))
        out[cid] = present
    return out


def test_each_source_is_described_as_what_it_is() -> None:
    st = _statements(
        _rows(
            {
                "m": ("model", "remove", "FULLY"),
                "h": ("hash_match", "remove", "FULLY"),
                "r": ("human_review", "demote", "NOT_AUTOMATED"),
                "a": ("appeal", "label", "NOT_AUTOMATED"),
            }
        )
    )
    assert CLASSIFIER in str(st["m"]["decision_facts"])
    assert "Actions by market: DE removed." in str(st["m"]["decision_facts"])
    for cid in ("h", "r", "a"):
        assert CLASSIFIER not in str(st[cid]["decision_facts"]), cid
    hash_facts = str(st["h"]["decision_facts"])
    assert "matched material already known to violate the policy" in hash_facts
    assert "DE removed (known-material match)" in hash_facts
    assert st["h"]["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    review = str(st["r"]["decision_facts"])
    assert "human moderator reviewed the content" in review and "DE demoted (human review)" in review
    assert st["r"]["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED"
    appeal = str(st["a"]["decision_facts"])
    assert "internal complaint (Article 20 DSA)" in appeal and "DE labelled (on appeal)" in appeal
    assert st["a"]["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED"


def test_hash_match_facts_carry_no_hash_value() -> None:
    rows = _rows({"h": ("hash_match", "remove", "FULLY")}).with_columns(
        pl.lit("f" * 64).alias("content_sha256"), pl.lit("known_csam:ext-42").alias("run_id")
    )
    text = json.dumps(_statements(rows)["h"])
    assert "f" * 16 not in text and "ext-42" not in text and "known_csam" not in text


def test_mixed_sources_name_each_market_s_source() -> None:
    base = _rows({"x": ("model", "remove", "FULLY")})
    fr = base.with_columns(
        pl.lit("FR").alias("market"), pl.lit("appeal").alias("source"), pl.lit("demote").alias("action")
    )
    facts = str(_statements(pl.concat([base, fr]))["x"]["decision_facts"])
    assert facts.index("internal complaint") < facts.index(CLASSIFIER)  # record first
    assert "Actions by market: DE removed, FR demoted (on appeal)." in facts


def test_rows_without_a_source_column_are_model_decisions() -> None:
    rows = _rows({"m": ("model", "remove", "FULLY")}).drop("source")
    assert CLASSIFIER in str(_statements(rows)["m"]["decision_facts"])
