"""Pack diff: records for the sweep, words for policy owners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines import markets as mk
from pipelines.policy import Pack, changed_policies, describe, diff, load_pack, validate

BASE = Path(__file__).with_name("test_policy_base.yaml")


def base_pack() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text())


def pack(doc: dict[str, Any]) -> Pack:
    return validate(doc, source="test")


def test_bundled_election_pack_diff() -> None:
    old, new = load_pack("default"), load_pack("election-eu")
    changes = diff(old, new)
    assert changed_policies(changes) == ("misinformation",)
    thresholds = [c for c in changes if c.kind == "thresholds"]
    assert [(c.tier, c.old, c.new) for c in thresholds] == [
        ("review", 0.5, 0.4),
        ("label", 0.7, 0.6),
        ("demote", 0.85, 0.75),
    ]
    assert all(set(c.markets) == set(mk.EU) for c in thresholds)
    assert thresholds[1].message == (
        "misinformation: in EU (27 markets) the label threshold goes from 0.7 to 0.6 (acts on more content)"
    )
    assert {c.kind for c in changes if not c.decision_relevant} == {"pack", "governance"}
    text = describe(changes, old, new)
    assert text.splitlines()[0] == "trustbatch-default@1.2.0 -> trustbatch-default@1.3.0: 6 change(s)"
    assert "Changes that can alter decisions (a sweep re-decides: misinformation):" in text


def test_identical_packs_have_no_changes() -> None:
    a = load_pack("default")
    assert diff(a, a) == []
    assert describe([], a, a).endswith("the packs decide and read the same")


def test_text_only_changes_are_not_decision_relevant() -> None:
    old = base_pack()
    new = base_pack()
    new["version"] = "1.0.1"
    new["policies"][0]["illegal_content_explanation"] = "Publicly incites hatred"
    new["policies"][1]["title"] = "Scams and phishing"
    new["policies"][0]["tiers"][2]["visibility"] = "DECISION_VISIBILITY_CONTENT_DISABLED"
    changes = diff(pack(old), pack(new))
    assert changed_policies(changes) == ()
    assert changed_policies(changes, decision_relevant=False) == ("hate", "scams")
    assert sorted(c.kind for c in changes) == ["ground", "pack", "title", "visibility"]


def test_decision_relevant_changes_of_every_kind() -> None:
    old = base_pack()
    new = base_pack()
    hate, scams, misinfo = new["policies"]
    hate["head"] = "hate_v2"
    hate["tiers"][2]["fully_automated"] = True
    scams["conditions"] = {"markets": ["EEA"]}
    misinfo["tiers"].insert(2, {"action": "demote", "fully_automated": True})
    misinfo["thresholds"]["default"]["demote"] = 0.8
    misinfo["thresholds"]["DE"] = {"remove": 0.85}
    new["policies"].append(dict(scams, id="spam", conditions=None))
    del new["policies"][-1]["conditions"]
    changes = diff(pack(old), pack(new))
    messages = [c.message for c in changes if c.decision_relevant]
    assert messages == [
        "hate: reads head 'hate_v2' instead of 'hate' (needs scores of that head)",
        "hate: tier remove is now applied fully automated",
        "scams: conditions change from no conditions (applies everywhere) to only in markets EEA (30 markets)",
        "misinformation: gains tier demote (default threshold 0.8)",
        "misinformation: in DE the remove threshold goes from 0.9 to 0.85 (acts on more content)",
        "spam: new policy 'Scams' reading head 'scams' with tiers review, label",
    ]
    assert changed_policies(changes) == ("hate", "scams", "misinformation", "spam")
    removed = diff(pack(new), pack(old))
    assert [c.message for c in removed if c.kind in ("policy_removed", "tiers")] == [
        "spam: policy is removed",
        "misinformation: tier demote is removed",
    ]


def test_default_change_reaches_markets_no_override_names() -> None:
    old = base_pack()
    new = base_pack()
    old["policies"][1]["thresholds"]["EU"] = {"label": 0.5}
    new["policies"][1]["thresholds"]["EU"] = {"label": 0.5}
    new["policies"][1]["thresholds"]["default"]["label"] = 0.7
    (change,) = diff(pack(old), pack(new))
    assert set(change.markets) == (set(mk.ALL_MARKETS) - set(mk.EU)) | {"*"}
    assert change.message == (
        "scams: in IS, LI, NO, US, GB, BR, IN, ID, JP and markets no override names the label threshold "
        "goes from 0.6 to 0.7 (acts on less content)"
    )
    assert change.as_dict()["markets"] == list(change.markets)
