"""The validator: one exact message per problem, all problems at once, good packs pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import markets as mk
from pipelines.errors import BadConfigError
from pipelines.heads import DEFAULT_HEADS, DEFAULT_POLICIES
from pipelines.policy import InvalidPackError, Pack, load_default_pack, load_pack, parse_pack
from pipelines.policy.dsa import CATEGORIES, KEYWORDS

BASE = Path(__file__).with_name("test_policy_base.yaml")


def base_pack() -> dict[str, Any]:
    """A fresh copy of a small valid pack document (hate, scams, misinformation)."""
    return yaml.safe_load(BASE.read_text())


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def build(doc: dict[str, Any], *, source: str = "bad.yaml", heads: list[str] | None = None) -> Pack:
    return parse_pack(dump(doc), source=source, heads=heads)


UNKNOWN_MARKET = "(groups: EU, EEA, GLOBAL; markets: " + ", ".join(mk.ALL_MARKETS) + ")"


def problems(doc: dict[str, Any], **kw: Any) -> list[str]:
    with pytest.raises(InvalidPackError) as info:
        build(doc, **kw)
    return list(info.value.problems)


# -- the shipped packs -----------------------------------------------------------------


def test_default_pack_validates_and_covers_default_policies() -> None:
    pack = load_default_pack(heads=DEFAULT_HEADS)
    assert pack.policy_version == "trustbatch-default@1.2.0"
    # Every default policy of the model, plus terrorist_content, decided by bank known_terror alone.
    assert tuple(p for p in pack.policy_ids if p != "terrorist_content") == DEFAULT_POLICIES
    assert pack.heads == DEFAULT_HEADS
    terror = pack.policy("terrorist_content")
    assert (
        terror.head is None and terror.tiers == () and terror.category == "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY"
    )
    assert [(b.bank, b.action, b.fully_automated, b.threshold) for b in terror.banks] == [
        ("known_terror", "remove", True, 31)
    ]
    assert [b.bank for b in pack.policy("child_safety").banks] == ["known_csam"]
    assert pack.policy("child_safety").head == "child_safety"
    assert pack.policy("cross_border_data").head == "personal_data"
    assert pack.policy("cross_border_data").conditions.outside_transfer_zone
    # Stricter EU thresholds for illegal hate speech, stricter still in Germany.
    hate = pack.policy("hate")
    assert (
        hate.thresholds_for("DE")["remove"] < hate.thresholds_for("FR")["remove"] < hate.thresholds_for("US")["remove"]
    )


def test_election_pack_changes_only_eu_misinformation() -> None:
    old, new = load_pack("default"), load_pack("election-eu", heads=DEFAULT_HEADS)
    assert new.pack_id == old.pack_id and new.version == "1.3.0"
    for p in old.policies:
        q = new.policy(p.id)
        if p.id != "misinformation":
            assert q == p
        else:
            for m in (*mk.ALL_MARKETS, "ZZ"):
                before, after = p.thresholds_for(m), q.thresholds_for(m)
                if m in mk.EU:
                    assert all(after[a] < before[a] for a in before)
                else:
                    assert after == before


# -- one test per kind of problem, exact messages --------------------------------------


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(InvalidPackError) as info:
        parse_pack("pack_id: x\nversion: [1\n", source="bad.yaml")
    assert info.value.problems == (
        "bad.yaml: line 3, column 1: YAML syntax error: expected ',' or ']', but got '<stream end>'",
    )


def test_duplicate_yaml_key_is_refused() -> None:
    with pytest.raises(InvalidPackError) as info:
        parse_pack("pack_id: a\npack_id: b\n", source="bad.yaml")
    assert info.value.problems == (
        "bad.yaml: line 2, column 1: YAML error: duplicate key 'pack_id' (YAML would silently keep only the last one)",
    )


def test_unknown_field() -> None:
    doc = base_pack()
    doc["policies"][0]["tresholds"] = doc["policies"][0].pop("thresholds")
    assert problems(doc) == [
        "bad.yaml: policies[0].tresholds: unknown field (did you mean 'thresholds'?)",
        "bad.yaml: policies[0].thresholds: is missing",
    ]


def test_unknown_top_level_and_tier_fields() -> None:
    doc = base_pack()
    doc["owner"] = "x"
    doc["policies"][1]["tiers"][0]["automated"] = True
    assert problems(doc) == [
        "bad.yaml: owner: unknown field",
        "bad.yaml: policies[1].tiers[0].automated: unknown field (did you mean 'fully_automated'?)",
    ]


def test_unknown_market_or_group() -> None:
    doc = base_pack()
    doc["policies"][2]["thresholds"]["XX"] = {"remove": 0.8}
    doc["policies"][2]["thresholds"]["EUROPE"] = {"remove": 0.8}
    doc["policies"][0]["conditions"] = {"markets": ["EU", "EL"]}
    assert problems(doc) == [
        f"bad.yaml: policies[0].conditions.markets[1]: unknown market or group 'EL' {UNKNOWN_MARKET}",
        f"bad.yaml: policies[2].thresholds.XX: unknown market or group 'XX' {UNKNOWN_MARKET}",
        f"bad.yaml: policies[2].thresholds.EUROPE: unknown market or group 'EUROPE' {UNKNOWN_MARKET}",
    ]


def test_thresholds_not_increasing_along_tiers() -> None:
    doc = base_pack()
    doc["policies"][2]["thresholds"]["DE"] = {"remove": 0.6}
    assert problems(doc) == [
        "bad.yaml: policies[2].thresholds.DE.remove: thresholds must increase along the tiers: "
        "remove 0.6 is not above label 0.7 (from default)",
    ]


def test_thresholds_not_increasing_in_default_and_equal_values() -> None:
    doc = base_pack()
    doc["policies"][0]["thresholds"]["default"] = {"review": 0.5, "demote": 0.5, "remove": 0.4}
    assert problems(doc) == [
        "bad.yaml: policies[0].thresholds.default.demote: thresholds must increase along the tiers: "
        "demote 0.5 is not above review 0.5",
        "bad.yaml: policies[0].thresholds.default.remove: thresholds must increase along the tiers: "
        "remove 0.4 is not above demote 0.5",
    ]


def test_group_override_below_market_default_blames_the_more_specific_level() -> None:
    doc = base_pack()
    # EU lowers review above the default demote: the EU line is the one to change.
    doc["policies"][0]["thresholds"]["EU"] = {"review": 0.75}
    assert problems(doc) == [
        "bad.yaml: policies[0].thresholds.EU.review: thresholds must increase along the tiers: "
        "review 0.75 is not below demote 0.7 (from default)",
    ]


def test_thresholds_outside_unit_interval_and_not_numbers() -> None:
    doc = base_pack()
    doc["policies"][2]["thresholds"]["DE"] = {"remove": 1.2}
    doc["policies"][2]["thresholds"]["default"]["review"] = -0.1
    doc["policies"][1]["thresholds"]["default"]["label"] = "high"
    assert problems(doc) == [
        "bad.yaml: policies[1].thresholds.default.label: must be a number in [0, 1], got string 'high'",
        "bad.yaml: policies[2].thresholds.default.review: -0.1 is outside [0, 1]",
        "bad.yaml: policies[2].thresholds.DE.remove: 1.2 is outside [0, 1]",
    ]


def test_threshold_for_a_tier_the_policy_lacks_and_missing_default() -> None:
    doc = base_pack()
    doc["policies"][1]["thresholds"]["EU"] = {"remove": 0.8}
    del doc["policies"][2]["thresholds"]["default"]["label"]
    assert problems(doc) == [
        "bad.yaml: policies[1].thresholds.EU.remove: unknown tier 'remove' (this policy's tiers: review, label)",
        "bad.yaml: policies[2].thresholds.default.label: is missing (default thresholds must cover every tier)",
    ]


def test_tiers_out_of_order_and_unknown_action() -> None:
    doc = base_pack()
    doc["policies"][0]["tiers"] = [
        {"action": "review", "fully_automated": True},
        {"action": "remove", "fully_automated": False},
        {"action": "demote", "fully_automated": True},
    ]
    doc["policies"][1]["tiers"][1]["action"] = "ban"
    assert problems(doc) == [
        "bad.yaml: policies[0].tiers[2].action: 'demote' comes after 'remove'; tiers go once each, in the order "
        "review, label, demote, age_restrict, remove",
        "bad.yaml: policies[1].tiers[1].action: unknown action 'ban' "
        "(allowed: review, label, demote, age_restrict, remove)",
    ]


def test_tier_automation_and_visibility() -> None:
    doc = base_pack()
    del doc["policies"][0]["tiers"][2]["fully_automated"]
    doc["policies"][0]["tiers"][0]["visibility"] = "DECISION_VISIBILITY_CONTENT_DEMOTED"
    doc["policies"][0]["tiers"][1]["visibility"] = "DECISION_VISIBILITY_CONTENT_DEMOTE"
    assert problems(doc) == [
        "bad.yaml: policies[0].tiers[0].visibility: review is not restrictive and takes no decision_visibility",
        "bad.yaml: policies[0].tiers[1].visibility: unknown decision_visibility 'DECISION_VISIBILITY_CONTENT_DEMOTE' "
        "(did you mean 'DECISION_VISIBILITY_CONTENT_DEMOTED'?)",
        "bad.yaml: policies[0].tiers[2].fully_automated: is missing "
        "(true: applied without a human; false: waits for review)",
    ]


def test_duplicate_policy_id() -> None:
    doc = base_pack()
    doc["policies"][2]["id"] = "hate"
    assert problems(doc) == ["bad.yaml: policies[2].id: duplicate policy id 'hate' (first at policies[0])"]


def test_unknown_dsa_category_and_keywords() -> None:
    doc = base_pack()
    doc["policies"][0]["category"] = "STATEMENT_CATEGORY_SCAM_AND_FRAUD"
    doc["policies"][1]["category_specification"] = ["KEYWORD_PHISHING", "KEYWORD_SPAM"]
    doc["policies"][2]["category_specification"] = ["KEYWORD_HATE_SPEECH"]
    assert problems(doc) == [
        "bad.yaml: policies[0].category: unknown DSA category 'STATEMENT_CATEGORY_SCAM_AND_FRAUD' "
        "(did you mean 'STATEMENT_CATEGORY_SCAMS_AND_FRAUD'?) (see docs/policy-packs.md for the list)",
        "bad.yaml: policies[1].category_specification[1]: unknown DSA keyword 'KEYWORD_SPAM'",
        "bad.yaml: policies[2].category_specification[0]: keyword KEYWORD_HATE_SPEECH does not belong to category "
        "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS (its keywords: "
        "KEYWORD_MISINFORMATION_DISINFORMATION, KEYWORD_VIOLATION_EU_LAW, KEYWORD_VIOLATION_NATIONAL_LAW, "
        "KEYWORD_OTHER)",
    ]


def test_missing_ground_texts_for_a_restrictive_tier() -> None:
    doc = base_pack()
    del doc["policies"][0]["illegal_content_explanation"]
    del doc["policies"][1]["incompatible_content_ground"]
    assert problems(doc) == [
        "bad.yaml: policies[0].illegal_content_explanation: is missing: restrictive tier demote, remove on "
        "DECISION_GROUND_ILLEGAL_CONTENT needs it for statements of reasons",
        "bad.yaml: policies[1].incompatible_content_ground: is missing: restrictive tier label on "
        "DECISION_GROUND_INCOMPATIBLE_CONTENT needs it for statements of reasons",
    ]


def test_review_only_policy_needs_no_ground_texts() -> None:
    doc = base_pack()
    p = doc["policies"][1]
    del p["incompatible_content_ground"], p["incompatible_content_explanation"]
    p["tiers"] = p["tiers"][:1]
    p["thresholds"] = {"default": {"review": 0.4}}
    build(doc)


def test_head_the_model_lacks() -> None:
    doc = base_pack()
    assert problems(doc, heads=["hate", "scams"]) == [
        "bad.yaml: policies[2].head: the model has no head 'misinformation' (its heads: hate, scams); "
        "score with a model that has it, or change the policy's head",
    ]
    build(doc)  # without a head list, heads are not checked


def test_version_must_be_a_string_and_governance_complete() -> None:
    doc = base_pack()
    doc["version"] = 1.1
    doc["governance"]["effective_date"] = "next week"
    del doc["governance"]["approver"]
    assert problems(doc) == [
        'bad.yaml: version: must be a string; quote it (version: "1.1") so YAML does not read a number',
        "bad.yaml: governance.effective_date: 'next week' is not a date (use YYYY-MM-DD)",
        "bad.yaml: governance.approver: is missing",
    ]


def test_all_problems_in_one_error_with_a_summary_first_line() -> None:
    doc = base_pack()
    doc["policies"][0]["head"] = "Hate Speech"
    doc["policies"][2]["thresholds"]["DE"] = {"remove": 1.5}
    doc["policies"][2]["id"] = "hate"
    with pytest.raises(BadConfigError) as info:
        build(doc, source="packs/bad.yaml")
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "policy pack packs/bad.yaml is invalid: 3 problems (nothing was run; fix the pack and check it with "
        "'batchjobs policy validate')"
    )
    assert lines[1:] == [
        "  packs/bad.yaml: policies[0].head: 'Hate Speech' is not a head name (lower-case letters, digits and _)",
        "  packs/bad.yaml: policies[2].id: duplicate policy id 'hate' (first at policies[0])",
        "  packs/bad.yaml: policies[2].thresholds.DE.remove: 1.5 is outside [0, 1]",
    ]


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidPackError) as info:
        parse_pack("- a\n- b\n", source="bad.yaml")
    assert info.value.problems == (
        "bad.yaml: (top level): must be a mapping with fields pack_id, version, governance, policies, got a list",
    )


def test_unknown_bundled_name(tmp_path: Any) -> None:
    with pytest.raises(BadConfigError, match="neither a file nor a bundled pack"):
        load_pack(str(tmp_path / "nope.yaml"))


def test_pack_text_and_hash_are_the_file(tmp_path: Any) -> None:
    path = tmp_path / "p.yaml"
    text = "# comment\n" + dump(base_pack())
    path.write_text(text)
    pack = load_pack(path)
    assert pack.text == text
    import hashlib

    assert pack.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_dsa_enums_hold_the_published_categories() -> None:
    for name in (
        "STATEMENT_CATEGORY_ANIMAL_WELFARE",
        "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
        "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
        "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
        "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
        "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
        "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
        "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
        "STATEMENT_CATEGORY_SELF_HARM",
        "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE",
        "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
        "STATEMENT_CATEGORY_VIOLENCE",
    ):
        assert name in CATEGORIES
    assert "KEYWORD_OTHER" in KEYWORDS and "KEYWORD_HATE_SPEECH" in KEYWORDS
