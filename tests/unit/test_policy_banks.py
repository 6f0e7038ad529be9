"""Bank bindings in policy packs: policies decided by hash banks, with or without a model head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from pipelines.policy import InvalidPackError, Pack, decide, diff, load_default_pack, parse_pack
from pipelines.scoring.commit import decide_scores, head_rows, scores_long

BASE = Path(__file__).with_name("test_policy_base.yaml")


def base_pack() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text())


def build(doc: dict[str, Any]) -> Pack:
    return parse_pack(yaml.safe_dump(doc, sort_keys=False), source="bad.yaml")


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidPackError) as info:
        build(doc)
    return list(info.value.problems)


def bank_only(**binding: Any) -> dict[str, Any]:
    """A pack whose last policy is decided by a bank alone (no head, tiers or thresholds)."""
    doc = base_pack()
    policy = dict(doc["policies"][0])
    for key in ("head", "tiers", "thresholds"):
        policy.pop(key)
    policy["id"] = "terror"
    policy["banks"] = [{"bank": "known_terror", "action": "remove", "fully_automated": True, **binding}]
    doc["policies"].append(policy)
    return doc


def test_policy_with_neither_head_nor_bank_is_refused_in_one_line() -> None:
    doc = base_pack()
    for key in ("head", "tiers", "thresholds"):
        doc["policies"][1].pop(key)
    got = problems(doc)
    assert len(got) == 1 and "\n" not in got[0]
    assert got[0].startswith("bad.yaml: policies[1]: has neither a head nor banks")


def test_bank_only_policy_validates_with_defaults() -> None:
    pack = build(bank_only())
    terror = pack.policy("terror")
    assert terror.head is None and terror.tiers == () and dict(terror.thresholds) == {}
    (binding,) = terror.banks
    assert (binding.bank, binding.threshold, binding.action, binding.fully_automated) == (
        "known_terror",
        31,
        "remove",
        True,
    )
    assert binding.visibility == "DECISION_VISIBILITY_CONTENT_REMOVED" and binding.allow == ()
    assert "terror" not in [p.id for p in pack.model_policies]
    assert pack.banks == ("known_terror",)
    assert [(p.id, b.bank) for p, b in pack.bindings("known_terror")] == [("terror", "known_terror")]


def test_bad_bindings_each_have_one_message() -> None:
    assert problems(bank_only(threshold=300)) == [
        "bad.yaml: policies[3].banks[0].threshold: must be a whole number of bits in [0, 256] (PDQ distance; "
        "default 31), got number 300"
    ]
    assert problems(bank_only(action="delete")) == [
        "bad.yaml: policies[3].banks[0].action: unknown action 'delete' (allowed: review, label, demote, "
        "age_restrict, remove)"
    ]
    assert problems(bank_only(allow=["known_terror"])) == [
        "bad.yaml: policies[3].banks[0].allow[0]: bank 'known_terror' cannot be its own allow-list"
    ]
    doc = bank_only()
    doc["policies"][3]["banks"][0].pop("fully_automated")
    assert problems(doc) == [
        "bad.yaml: policies[3].banks[0].fully_automated: is missing (true: applied without a human; false: waits "
        "for review)"
    ]
    doc = bank_only()
    doc["policies"][3]["tiers"] = [{"action": "remove", "fully_automated": True}]
    assert problems(doc) == [
        "bad.yaml: policies[3].tiers: needs a head: a policy decided by banks alone takes its action from them"
    ]
    doc = bank_only()
    doc["policies"][3]["banks"].append(dict(doc["policies"][3]["banks"][0]))
    assert problems(doc) == ["bad.yaml: policies[3].banks[1].bank: bank 'known_terror' is bound twice (first at "
                             "policies[3].banks[0])"]  # fmt: skip


def test_allow_lists_and_diff_of_a_threshold_change() -> None:
    old = build(bank_only(allow=["terror_allow"]))
    assert old.policy("terror").banks[0].allow == ("terror_allow",)
    new_doc = bank_only(allow=["terror_allow"], threshold=20)
    new_doc["version"] = "9.9.9"
    changes = [c for c in diff(old, build(new_doc)) if c.kind == "banks"]
    assert len(changes) == 1 and changes[0].decision_relevant and changes[0].policy_id == "terror"
    assert "distance <= 31" in changes[0].message and "distance <= 20" in changes[0].message


def test_head_less_policy_does_not_break_model_scoring() -> None:
    pack = load_default_pack()
    assert pack.policy("terrorist_content").head is None
    heads = pack.heads
    rows = pl.DataFrame(
        {
            "content_id": ["a", "b"],
            "head_scores": [[0.99] * len(heads), [0.0] * len(heads)],
            "created_at": [None, None],
            "region": ["DE", "US"],
            "markets": [["DE", "FR"], None],
            "language": ["de", "en"],
            "content_type": ["TEXT", "TEXT"],
            "content_sha256": ["x", "y"],
            "chunk_id": [0, 0],
        }
    )
    long = scores_long(rows, heads, pack)
    assert "terrorist_content" not in long["policy_id"].to_list()
    assert set(long["policy_id"]) == {p.id for p in pack.model_policies}
    out = decide_scores(long, pack)
    assert "terrorist_content" not in out["policy_id"].to_list()
    assert out.height == 3 * len(pack.model_policies)  # a: DE, FR; b: US
    assert head_rows(long, pack).height == 2 * len(heads)
    # decide on per-head rows directly ignores the bank-only policy too
    direct = decide(head_rows(long, pack), pack)
    assert direct.equals(out)
