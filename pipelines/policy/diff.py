"""What changed between two packs: as data for the sweep, and in words for policy owners.

:func:`diff` returns one :class:`PolicyChange` per change. ``decision_relevant`` says
whether the change can alter a decision row (thresholds, tiers, automation, markets and
groups, conditions, head, policies added or removed); the sweep re-decides exactly the
policies of those changes (:func:`changed_policies`). Changes of texts (titles, grounds,
DSA category, visibility) and governance only change what statements of reasons say.

Threshold changes are computed on the *resolved* thresholds of every market (overrides
applied), then grouped: ``misinformation: in EU (27 markets) the label threshold goes from
0.7 to 0.6 (acts on more content)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from pipelines import markets as mk
from pipelines.policy.model import BankBinding, Conditions, Pack, Policy

# Pseudo-market for every market that no override names (resolved to the default).
OTHER_MARKETS = "*"
DECISION_KINDS: frozenset[str] = frozenset(
    {"policy_added", "policy_removed", "head", "banks", "conditions", "tiers", "automation", "thresholds"}
)
TEXT_KINDS: frozenset[str] = frozenset({"pack", "governance", "title", "category", "ground", "visibility"})


@dataclass(frozen=True)
class PolicyChange:
    """One change between two packs.

    policy_id: the policy changed; None for pack-level changes (version, governance).
    kind: one of DECISION_KINDS | TEXT_KINDS.
    decision_relevant: whether decisions can differ because of it (sweep must re-decide).
    message: the change in one sentence a policy owner reads.
    tier: the tier action concerned, if any.
    markets: the markets whose decisions it can change ("*" = markets no override names).
    old, new: the values before and after (None where absent).
    """

    policy_id: str | None
    kind: str
    decision_relevant: bool
    message: str
    tier: str | None = None
    markets: tuple[str, ...] = ()
    old: object = None
    new: object = None
    field_name: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready record (the ``--json`` output of ``batchjobs policy diff``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["markets"] = list(self.markets)
        return out


def _version_key(version: str) -> tuple[int, ...] | None:
    parts = re.split(r"[.+-]", version)
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def describe_markets(markets: Iterable[str]) -> str:
    """Words for a set of markets: ``every market``, ``EU (27 markets)``, ``DE, FR``."""
    got = set(markets)
    if got >= {*mk.ALL_MARKETS, OTHER_MARKETS}:
        return "every market"
    known = got - {OTHER_MARKETS}
    for name in ("EU", "EEA", "GLOBAL"):
        if known == set(mk.GROUPS[name]):
            words = f"{name} ({len(known)} markets)"
            return words + (" and markets no override names" if OTHER_MARKETS in got else "")
    words = ", ".join(m for m in mk.ALL_MARKETS if m in known)
    if OTHER_MARKETS in got:
        words = f"{words} and markets no override names" if words else "markets no override names"
    return words


def _direction(old: float, new: float) -> str:
    return "acts on more content" if new < old else "acts on less content"


def _conditions_words(c: Conditions) -> str:
    parts = []
    if c.regions is not None:
        parts.append(f"origin region in {describe_markets(c.regions)}")
    if c.markets is not None:
        parts.append(f"only in markets {describe_markets(c.markets)}")
    if c.outside_transfer_zone:
        parts.append("only in markets outside the origin's transfer zone")
    return "; ".join(parts) if parts else "no conditions (applies everywhere)"


def _binding_words(b: BankBinding | None) -> str:
    if b is None:
        return "not bound"
    auto = "fully automated" if b.fully_automated else "waits for review"
    allow = f", allow-lists {', '.join(b.allow)}" if b.allow else ""
    return f"{b.action} ({auto}) at distance <= {b.threshold}{allow}"


def _threshold_changes(old: Policy, new: Policy) -> list[PolicyChange]:
    common = [a for a in new.actions if a in old.actions]
    groups: dict[tuple[str, float, float], list[str]] = {}
    for market in (*mk.ALL_MARKETS, OTHER_MARKETS):
        before, after = old.thresholds_for(market), new.thresholds_for(market)
        for action in common:
            if before[action] != after[action]:
                groups.setdefault((action, before[action], after[action]), []).append(market)
    out = []
    for (action, before_v, after_v), where in groups.items():
        out.append(
            PolicyChange(
                policy_id=new.id,
                kind="thresholds",
                decision_relevant=True,
                message=(
                    f"{new.id}: in {describe_markets(where)} the {action} threshold goes from "
                    f"{before_v:g} to {after_v:g} ({_direction(before_v, after_v)})"
                ),
                tier=action,
                markets=tuple(where),
                old=before_v,
                new=after_v,
            )
        )
    return out


def _policy_changes(old: Policy, new: Policy) -> list[PolicyChange]:
    pid = new.id
    everywhere = (*mk.ALL_MARKETS, OTHER_MARKETS)
    out: list[PolicyChange] = []

    def add(kind: str, message: str, *, old_v: object = None, new_v: object = None, **kw: object) -> None:
        relevant = kind in DECISION_KINDS
        markets = kw.pop("markets", everywhere if relevant else ())
        out.append(
            PolicyChange(
                policy_id=pid, kind=kind, decision_relevant=relevant, message=f"{pid}: {message}",
                old=old_v, new=new_v, markets=tuple(markets), **kw,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    if old.head != new.head:
        add("head", f"reads head '{new.head}' instead of '{old.head}' (needs scores of that head)",
            old_v=old.head, new_v=new.head)  # fmt: skip
    old_b, new_b = {b.bank: b for b in old.banks}, {b.bank: b for b in new.banks}
    for bank in dict.fromkeys([*old_b, *new_b]):
        a_b, b_b = old_b.get(bank), new_b.get(bank)
        if a_b != b_b:
            add("banks", f"bank {bank}: {_binding_words(a_b)} -> {_binding_words(b_b)}",
                old_v=_binding_words(a_b), new_v=_binding_words(b_b))  # fmt: skip
    if old.conditions != new.conditions:
        add("conditions", f"conditions change from {_conditions_words(old.conditions)} "
            f"to {_conditions_words(new.conditions)}", old_v=_conditions_words(old.conditions),
            new_v=_conditions_words(new.conditions))  # fmt: skip
    for action in old.actions:
        if action not in new.actions:
            add("tiers", f"tier {action} is removed", tier=action, old_v=action)
    for action in new.actions:
        if action not in old.actions:
            t = new.thresholds_for(OTHER_MARKETS)[action]
            add("tiers", f"gains tier {action} (default threshold {t:g})", tier=action, new_v=action)
            continue
        a, b = old.tier(action), new.tier(action)
        if a.fully_automated != b.fully_automated:
            words = "is now applied fully automated" if b.fully_automated else "now waits for human review"
            add("automation", f"tier {action} {words}", tier=action,
                old_v=a.fully_automated, new_v=b.fully_automated)  # fmt: skip
        if a.visibility != b.visibility:
            add("visibility", f"tier {action} is reported as {b.visibility} instead of {a.visibility}",
                tier=action, old_v=a.visibility, new_v=b.visibility)  # fmt: skip
    out += _threshold_changes(old, new)
    if old.title != new.title:
        add("title", f"title changes from '{old.title}' to '{new.title}'", old_v=old.title, new_v=new.title)
    if (old.category, old.category_specification) != (new.category, new.category_specification):
        add("category", f"DSA category changes from {old.category} {list(old.category_specification)} to "
            f"{new.category} {list(new.category_specification)}", old_v=old.category, new_v=new.category)  # fmt: skip
    for name in (
        "decision_ground", "illegal_content_legal_ground", "illegal_content_explanation",
        "incompatible_content_ground", "incompatible_content_explanation",
    ):  # fmt: skip
        a_text, b_text = getattr(old, name), getattr(new, name)
        if a_text != b_text:
            add("ground", f"{name} changes from {a_text!r} to {b_text!r}", old_v=a_text, new_v=b_text,
                field_name=name)  # fmt: skip
    return out


def _decided_by(p: Policy) -> str:
    parts = [f"reading head '{p.head}' with tiers {', '.join(p.actions)}"] if p.head is not None else []
    parts += [f"matching bank '{b.bank}' ({b.action})" for b in p.banks]
    return " and ".join(parts)


def diff(old: Pack, new: Pack) -> list[PolicyChange]:
    """Every change from ``old`` to ``new``, pack-level first, then per policy in ``new`` order."""
    out: list[PolicyChange] = []
    if old.pack_id != new.pack_id:
        out.append(PolicyChange(None, "pack", False, f"pack id changes from {old.pack_id} to {new.pack_id}",
                                old=old.pack_id, new=new.pack_id))  # fmt: skip
    if old.version != new.version:
        ko, kn = _version_key(old.version), _version_key(new.version)
        note = " (not higher: a pack version must grow when its content changes)" if ko and kn and kn <= ko else ""
        out.append(PolicyChange(None, "pack", False, f"version goes from {old.version} to {new.version}{note}",
                                old=old.version, new=new.version))  # fmt: skip
    for name in ("effective_date", "owner", "approver", "rationale"):
        a, b = getattr(old.governance, name), getattr(new.governance, name)
        if a != b:
            words = f"changes to: {b}" if name == "rationale" else f"changes from {a} to {b}"
            out.append(PolicyChange(None, "governance", False, f"governance {name} {words}",
                                    old=str(a), new=str(b), field_name=name))  # fmt: skip
    everywhere = (*mk.ALL_MARKETS, OTHER_MARKETS)
    for p in old.policies:
        if p.id not in new.policy_ids:
            out.append(PolicyChange(p.id, "policy_removed", True, f"{p.id}: policy is removed",
                                    markets=everywhere, old=p.id))  # fmt: skip
    for p in new.policies:
        if p.id not in old.policy_ids:
            out.append(PolicyChange(p.id, "policy_added", True,
                                    f"{p.id}: new policy '{p.title}' {_decided_by(p)}",
                                    markets=everywhere, new=p.id))  # fmt: skip
        else:
            out += _policy_changes(old.policy(p.id), p)
    return out


def changed_policies(changes: Sequence[PolicyChange], *, decision_relevant: bool = True) -> tuple[str, ...]:
    """Policy ids with a change of the given relevance, in first-seen order."""
    ids = [c.policy_id for c in changes if c.policy_id is not None and c.decision_relevant == decision_relevant]
    return tuple(dict.fromkeys(ids))


def describe(changes: Sequence[PolicyChange], old: Pack, new: Pack) -> str:
    """The diff as text: a header, then decision changes, then text/governance changes."""
    lines = [f"{old.policy_version} -> {new.policy_version}: {len(changes)} change(s)"]
    if not changes:
        return lines[0] + "; the packs decide and read the same"
    relevant = [c for c in changes if c.decision_relevant]
    other = [c for c in changes if not c.decision_relevant]
    if relevant:
        ids = ", ".join(changed_policies(changes))
        lines.append(f"Changes that can alter decisions (a sweep re-decides: {ids}):")
        lines += [f"  - {c.message}" for c in relevant]
    else:
        lines.append("No change alters decisions (a sweep has nothing to re-decide).")
    if other:
        lines.append("Changes to texts and governance only:")
        lines += [f"  - {c.message}" for c in other]
    return "\n".join(lines)
