"""Statements of reasons: API field names and values, one per restrictive EEA decision, schema-valid."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import polars as pl
import pytest

from pipelines import markets as mk
from pipelines.audit.sor import build, restrictive_rows, write_jsonl
from pipelines.policy import dsa, load_default_pack
from pipelines.schema import CONTENT_TYPES

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "pipelines" / "dsa_statement.schema.json").read_text())


def _rows() -> pl.DataFrame:
    t0, t1 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 2, 10, tzinfo=UTC)
    rows = [
        # content, market, policy, action, automated
        ("a", "DE", "hate", "remove", "PARTIALLY"),
        ("a", "FR", "hate", "demote", "FULLY"),
        ("a", "US", "hate", "remove", "PARTIALLY"),  # outside the EEA: not in scope
        ("b", "NO", "misinformation", "label", "FULLY"),
        ("c", "DE", "violence", "review", "FULLY"),  # review is not restrictive
        ("d", "US", "scams", "remove", "PARTIALLY"),  # no EEA market
        ("e", "IT", "cross_border_data", "remove", "PARTIALLY"),
    ]
    pack = load_default_pack()
    return pl.DataFrame(
        {
            "content_id": [r[0] for r in rows],
            "market": [r[1] for r in rows],
            "policy_id": [r[2] for r in rows],
            "policy_version": pack.policy_version,
            "action": [r[3] for r in rows],
            "automated": [r[4] for r in rows],
            "model_name": "starter",
            "model_version": "3",
            "created_at": t0,
            "decided_at": t1,
            "content_type": "TEXT",
        }
    )


def _packs() -> dict:
    pack = load_default_pack()
    return {pack.policy_version: (pack, pack.sha256)}


def test_one_statement_per_restrictive_eea_decision_with_api_values(tmp_path: Path) -> None:
    rows = restrictive_rows(_rows().lazy()).collect()
    path = tmp_path / "sor.jsonl"
    assert write_jsonl(str(path), rows, _packs()) == 3
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for st in lines:
        assert not list(validator.iter_errors(st))
        assert "content_id" not in json.dumps(st) and st["puid"] != "a"
    hate = next(s for s in lines if s["category"] == "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH")
    assert hate["territorial_scope"] == ["DE", "FR"]
    assert hate["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DEMOTED", "DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert hate["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    assert hate["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT" and hate["illegal_content_legal_ground"]
    assert "incompatible_content_ground" not in hate
    assert "Actions by market: DE removed, FR demoted." in hate["decision_facts"]
    assert (hate["content_date"], hate["application_date"]) == ("2026-03-01", "2026-04-02")
    assert hate["source_type"] == "SOURCE_VOLUNTARY" and hate["automated_detection"] == "Yes"
    mis = next(s for s in lines if s["territorial_scope"] == ["NO"])
    assert mis["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert mis["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT" and "illegal_content_explanation" not in mis
    xb = next(s for s in lines if s["territorial_scope"] == ["IT"])
    assert xb["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DISABLED"]  # the pack's tier visibility


def test_puid_is_deterministic_and_changes_with_the_decision() -> None:
    rows = restrictive_rows(_rows().lazy()).collect()
    a, _ = build(rows, _packs())
    b, _ = build(rows.reverse(), _packs())
    assert a["puid"].to_list() == b["puid"].to_list()
    changed = rows.with_columns(
        pl.when(pl.col("market") == "FR").then(pl.lit("remove")).otherwise("action").alias("action")
    )
    c, _ = build(changed, _packs())
    assert c["puid"].to_list() != a["puid"].to_list()
    assert all(p.startswith("tb-") and len(p) == 43 for p in a["puid"].to_list())


def test_unknown_pack_versions_and_old_dates_are_skipped() -> None:
    rows = restrictive_rows(_rows().lazy()).collect()
    rows = rows.with_columns(
        pl.when(pl.col("content_id") == "b")
        .then(pl.lit("other@9"))
        .otherwise("policy_version")
        .alias("policy_version"),
        pl.when(pl.col("content_id") == "e")
        .then(pl.lit(datetime(1999, 1, 1, tzinfo=UTC)))
        .otherwise("created_at")
        .alias("created_at"),
    )
    out, skipped = build(rows, _packs())
    assert out.height == 1 and skipped == 2


def test_schema_enumerations_match_the_project_sources() -> None:
    props = SCHEMA["properties"]
    assert props["category"]["enum"] == list(dsa.CATEGORIES)
    assert props["category_specification"]["items"]["enum"] == list(dsa.KEYWORDS)
    assert props["decision_visibility"]["items"]["enum"] == list(dsa.DECISION_VISIBILITIES)
    assert props["decision_ground"]["enum"] == list(dsa.DECISION_GROUNDS)
    assert props["territorial_scope"]["items"]["enum"] == list(mk.EEA) and "GR" in mk.EEA
    assert props["content_type"]["items"]["enum"] == list(CONTENT_TYPES)


@pytest.mark.parametrize(
    ("field", "value"),
    [("puid", "has space"), ("territorial_scope", ["US"]), ("automated_decision", "Yes"), ("content_date", "2026-1-1")],
)
def test_schema_refuses_what_the_api_refuses(tmp_path: Path, field: str, value: object) -> None:
    rows = restrictive_rows(_rows().lazy()).collect()
    path = tmp_path / "s.jsonl"
    write_jsonl(str(path), rows, _packs())
    st = json.loads(path.read_text().splitlines()[0])
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not list(validator.iter_errors(st))
    st[field] = value
    assert list(validator.iter_errors(st))
    del st[field]
    if field != "content_date":
        assert list(validator.iter_errors(st)) or field not in SCHEMA["required"]
