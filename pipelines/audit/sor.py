"""DSA statements of reasons (Transparency Database API fields), one per restrictive decision.

One statement per (content_id, policy_id) whose current decision in the period restricts the
item (label, demote, age-restrict, remove; not ``review``) in at least one EU/EEA market.
``territorial_scope`` lists those markets; ``decision_visibility`` the visibilities of the
tiers applied there (a policy may remove in one market and demote in another: both appear,
and ``decision_facts`` says which market got which). Ground and explanation texts, category
and keywords come from the pack version that decided, as stored in ``policy_packs``.

``puid`` is ``tb-`` + the first 40 hex digits of SHA-256 over content id, policy id, policy
and model versions and the (market, action) pairs: the same decision always gets the same
puid (a re-run cannot submit twice), and a changed decision gets a new one. Statements never
carry the item's text or media, nor its content id: the puid is the link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date

import polars as pl

from pipelines import markets as mk
from pipelines.policy import Pack
from pipelines.policy.model import DEFAULT_VISIBILITY, RESTRICTIVE_ACTIONS

SOURCE_TYPE = "SOURCE_VOLUNTARY"
AUTOMATED_DECISION = {
    "FULLY": "AUTOMATED_DECISION_FULLY",
    "PARTIALLY": "AUTOMATED_DECISION_PARTIALLY",
    "NOT_AUTOMATED": "AUTOMATED_DECISION_NOT_AUTOMATED",
}
_MIN_CONTENT_DATE = date(2000, 1, 1)
_MIN_APPLICATION_DATE = date(2020, 1, 1)
_ACTION_WORDS = {"label": "labelled", "demote": "demoted", "age_restrict": "age-restricted", "remove": "removed"}
_SEVERITY = {"label": 0, "demote": 1, "age_restrict": 2, "remove": 3}


def restrictive_rows(current: pl.LazyFrame) -> pl.LazyFrame:
    """Current decisions that restrict an item in an EU/EEA market."""
    return current.filter(
        pl.col("action").is_in(list(RESTRICTIVE_ACTIONS)) & pl.col("market").is_in(list(mk.EEA))
    ).select(
        "content_id", "market", "policy_id", "policy_version", "action", "automated", "model_name", "model_version",
        "created_at", "decided_at", "content_type",
    )  # fmt: skip


def _automated(values: list[str]) -> str:
    kinds = set(values)
    if kinds == {"FULLY"}:
        return AUTOMATED_DECISION["FULLY"]
    if kinds == {"NOT_AUTOMATED"}:
        return AUTOMATED_DECISION["NOT_AUTOMATED"]
    return AUTOMATED_DECISION["PARTIALLY"]


def _visibility(pack: Pack | None, policy_id: str, action: str) -> str:
    if pack is not None and policy_id in pack.policy_ids:
        tier = next((t for t in pack.policy(policy_id).tiers if t.action == action), None)
        if tier is not None and tier.visibility:
            return tier.visibility
    return DEFAULT_VISIBILITY[action]


def _puid(content_id: str, policy_id: str, policy_version: str, model: str, pairs: list[tuple[str, str]]) -> str:
    text = "\x1f".join([content_id, policy_id, policy_version, model, *(f"{m}={a}" for m, a in pairs)])
    return "tb-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _facts(title: str, model: str, by_action: dict[str, list[str]], automated: str) -> str:
    parts = [
        f"{_ACTION_WORDS[a]} in {', '.join(sorted(ms))}"
        for a, ms in sorted(by_action.items(), key=lambda kv: -_SEVERITY[kv[0]])
    ]
    how = {
        AUTOMATED_DECISION["FULLY"]: "The action was applied automatically, without human review.",
        AUTOMATED_DECISION["PARTIALLY"]: "The action was proposed automatically and applied after human review.",
        AUTOMATED_DECISION["NOT_AUTOMATED"]: "The action was decided by a human reviewer.",
    }[automated]
    return (
        f"The content was detected by an automated classifier ({model}) as violating the policy "
        f"'{title}': its score reached the action threshold set for each market. Content "
        + "; ".join(parts)
        + f". {how}"
    )[:5000]


def statements(rows: pl.DataFrame, packs: dict[str, tuple[Pack, str]]) -> Iterator[dict[str, object]]:
    """Statements of reasons for ``rows`` (from :func:`restrictive_rows`), in (content_id, policy_id) order.

    Skips (and does not yield) decisions whose dates the API refuses (content before 2000,
    application before 2020); :func:`write_jsonl` counts them.
    """
    grouped = (
        rows.sort("content_id", "policy_id", "market")
        .group_by("content_id", "policy_id", maintain_order=True)
        .agg(
            pl.col("market"),
            pl.col("action"),
            pl.col("automated"),
            pl.col("policy_version").sort().last(),
            pl.concat_str([pl.col("model_name"), pl.col("model_version")], separator="/").sort().last().alias("model"),
            pl.col("created_at").min(),
            pl.col("decided_at").max(),
            pl.col("content_type").first(),
        )
    )
    for r in grouped.iter_rows(named=True):
        pack = packs.get(r["policy_version"], (None, ""))[0]
        policy = pack.policy(r["policy_id"]) if pack is not None and r["policy_id"] in pack.policy_ids else None
        pairs = list(zip(r["market"], r["action"], strict=True))
        by_action: dict[str, list[str]] = {}
        for market, action in pairs:
            by_action.setdefault(action, []).append(market)
        visibilities = sorted({_visibility(pack, r["policy_id"], a) for a in by_action})
        automated = _automated(r["automated"])
        content_day = r["created_at"].date() if r["created_at"] is not None else None
        applied = r["decided_at"].date()
        if content_day is None or content_day < _MIN_CONTENT_DATE or applied < _MIN_APPLICATION_DATE:
            continue
        st: dict[str, object] = {"decision_visibility": visibilities}
        ground = policy.decision_ground if policy is not None else "DECISION_GROUND_INCOMPATIBLE_CONTENT"
        st["decision_ground"] = ground
        if ground == "DECISION_GROUND_ILLEGAL_CONTENT":
            st["illegal_content_legal_ground"] = ((policy and policy.illegal_content_legal_ground) or "")[:500]
            st["illegal_content_explanation"] = ((policy and policy.illegal_content_explanation) or "")[:2000]
        else:
            st["incompatible_content_ground"] = ((policy and policy.incompatible_content_ground) or "")[:500]
            st["incompatible_content_explanation"] = ((policy and policy.incompatible_content_explanation) or "")[:2000]
        ctype = f"CONTENT_TYPE_{r['content_type']}" if r["content_type"] else "CONTENT_TYPE_OTHER"
        st["content_type"] = [ctype]
        if ctype == "CONTENT_TYPE_OTHER":
            st["content_type_other"] = "unspecified"
        if policy is not None:
            st["category"] = policy.category
            if policy.category_specification:
                st["category_specification"] = list(policy.category_specification)
        st["territorial_scope"] = sorted({m for m, _ in pairs})
        st["content_date"] = content_day.isoformat()
        st["application_date"] = applied.isoformat()
        title = policy.title if policy is not None else r["policy_id"]
        st["decision_facts"] = _facts(title, r["model"], by_action, automated)
        st["source_type"] = SOURCE_TYPE
        st["automated_detection"] = "Yes"
        st["automated_decision"] = automated
        st["puid"] = _puid(r["content_id"], r["policy_id"], r["policy_version"], r["model"], pairs)
        yield st


def write_jsonl(path: str, rows: pl.DataFrame, packs: dict[str, tuple[Pack, str]]) -> int:
    """Write one statement per line (sorted keys, UTF-8); returns the number written."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for st in statements(rows, packs):
            fh.write(json.dumps(st, ensure_ascii=False, sort_keys=True))
            fh.write("\n")
            count += 1
    return count
