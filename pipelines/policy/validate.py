"""Validate a parsed policy pack and build its typed :class:`~pipelines.policy.model.Pack`.

Every problem is collected (not just the first) and reported as one line
``<file>: <path inside the pack>: <reason>``, e.g.
``election.yaml: policies[2].thresholds.DE.remove: 1.2 is outside [0, 1]``. All of them
are raised together as one :class:`InvalidPackError` (a
:class:`~pipelines.errors.BadConfigError`) whose first line is a summary.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

from pipelines import markets as mk
from pipelines.errors import BadConfigError
from pipelines.policy import dsa
from pipelines.policy.model import (
    DEFAULT_BANK_THRESHOLD,
    DEFAULT_KEY,
    DEFAULT_VISIBILITY,
    RESTRICTIVE_ACTIONS,
    TIER_ACTIONS,
    BankBinding,
    Conditions,
    Governance,
    Pack,
    Policy,
    Tier,
)

TOP_FIELDS = ("pack_id", "version", "governance", "policies")
GOVERNANCE_FIELDS = ("effective_date", "owner", "approver", "rationale")
POLICY_FIELDS = (
    "id", "title", "category", "category_specification", "decision_ground",
    "illegal_content_legal_ground", "illegal_content_explanation",
    "incompatible_content_ground", "incompatible_content_explanation",
    "head", "banks", "conditions", "tiers", "thresholds",
)  # fmt: skip
TIER_FIELDS = ("action", "visibility", "fully_automated")
BANK_FIELDS = ("bank", "threshold", "action", "fully_automated", "visibility", "allow")
CONDITION_FIELDS = ("regions", "markets", "outside_transfer_zone")
_REQUIRED_POLICY = ("id", "title", "category", "decision_ground")
_HEAD_FIELDS = ("tiers", "thresholds")  # required with a head, refused without one
GROUND_TEXTS: dict[str, tuple[str, str]] = {
    "DECISION_GROUND_ILLEGAL_CONTENT": ("illegal_content_legal_ground", "illegal_content_explanation"),
    "DECISION_GROUND_INCOMPATIBLE_CONTENT": ("incompatible_content_ground", "incompatible_content_explanation"),
}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_PACK_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


class InvalidPackError(BadConfigError):
    """A policy pack has problems; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        n = len(self.problems)
        head = (
            f"policy pack {source} is invalid: {n} problem{'s' if n != 1 else ''} "
            "(nothing was run; fix the pack and check it with 'batchjobs policy validate')"
        )
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


def _hint(value: str, choices: Sequence[str], prefix: str = "") -> str:
    """`` (did you mean 'X'?)`` for a near miss, compared without the enumeration's prefix."""
    stems = {c.removeprefix(prefix): c for c in choices}
    close = difflib.get_close_matches(value.removeprefix(prefix), list(stems), n=1, cutoff=0.6)
    return f" (did you mean '{stems[close[0]]}'?)" if close else ""


class _Checker:
    """Collects problems while walking a pack document."""

    def __init__(self, source: str, heads: Sequence[str] | None) -> None:
        self.source = source
        self.heads = tuple(heads) if heads is not None else None
        self.problems: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.problems.append(f"{self.source}: {path}: {reason}")

    # -- generic helpers ---------------------------------------------------------------
    def mapping(self, value: Any, path: str, allowed: Sequence[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping with fields {', '.join(allowed)}, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else str(key), f"unknown field{_hint(str(key), allowed)}")
        return value

    def text(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> str | None:
        value = m.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.add(where, "is missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(where, f"must be a non-empty string, got {_kind(value)}")
            return None
        return value.strip()

    def market_list(self, value: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.add(path, f"must be a non-empty list of markets or groups, got {_kind(value)}")
            return None
        out: list[str] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not mk.is_known(name):
                self.add(f"{path}[{i}]", _unknown_market(name))
                continue
            out.extend(mk.expand(name))
        return tuple(dict.fromkeys(out))

    # -- sections ----------------------------------------------------------------------
    def governance(self, value: Any) -> Governance | None:
        g = self.mapping(value, "governance", GOVERNANCE_FIELDS)
        if g is None:
            return None
        raw = g.get("effective_date")
        date: dt.date | None = None
        if raw is None:
            self.add("governance.effective_date", "is missing")
        elif isinstance(raw, dt.datetime):
            date = raw.date()
        elif isinstance(raw, dt.date):
            date = raw
        else:
            try:
                date = dt.date.fromisoformat(str(raw))
            except ValueError:
                self.add("governance.effective_date", f"'{raw}' is not a date (use YYYY-MM-DD)")
        owner = self.text(g, "owner", "governance")
        approver = self.text(g, "approver", "governance")
        rationale = self.text(g, "rationale", "governance")
        if date is None or owner is None or approver is None or rationale is None:
            return None
        return Governance(effective_date=date, owner=owner, approver=approver, rationale=rationale)

    def policy(self, value: Any, path: str) -> Policy | None:
        p = self.mapping(value, path, POLICY_FIELDS)
        if p is None:
            return None
        before = len(self.problems)
        for key in _REQUIRED_POLICY:
            if key not in p:
                self.add(f"{path}.{key}", "is missing")
        if p.get("head") is None and not p.get("banks"):
            self.add(
                path,
                "has neither a head nor banks: nothing could decide it; give it a model head (with tiers and "
                "thresholds), a bank binding (banks: [{bank: ..., action: ..., fully_automated: ...}]), or both",
            )
        elif p.get("head") is not None:
            for key in _HEAD_FIELDS:
                if key not in p:
                    self.add(f"{path}.{key}", "is missing")
        else:
            for key in _HEAD_FIELDS:
                if key in p:
                    self.add(
                        f"{path}.{key}", "needs a head: a policy decided by banks alone takes its action from them"
                    )
        pid = p.get("id")
        if "id" in p and (not isinstance(pid, str) or not _ID.match(pid)):
            self.add(f"{path}.id", f"{pid!r} is not a policy id (lower-case letters, digits and _)")
        title = self.text(p, "title", path) if "title" in p else None
        category, keywords = self.category(p, path)
        ground = p.get("decision_ground")
        if "decision_ground" in p and ground not in dsa.DECISION_GROUNDS:
            self.add(
                f"{path}.decision_ground",
                f"unknown decision ground {ground!r} (allowed: {', '.join(dsa.DECISION_GROUNDS)})",
            )
        texts = {k: self.text(p, k, path, required=False) for k in (*POLICY_FIELDS[5:9],)}
        head = p.get("head")
        if head is not None:
            if not isinstance(head, str) or not _ID.match(head):
                self.add(f"{path}.head", f"{head!r} is not a head name (lower-case letters, digits and _)")
            elif self.heads is not None and head not in self.heads:
                self.add(
                    f"{path}.head",
                    f"the model has no head '{head}' (its heads: {', '.join(self.heads)}); "
                    "score with a model that has it, or change the policy's head",
                )
        conditions = self.conditions(p.get("conditions"), f"{path}.conditions")
        tiers = self.tiers(p.get("tiers"), f"{path}.tiers") if "tiers" in p else None
        banks = self.banks(p.get("banks"), f"{path}.banks") if "banks" in p else ()
        if head is None and "tiers" not in p:
            tiers = ()
        actions = [t.action for t in tiers or ()] + [b.action for b in banks or ()]
        if actions and ground in GROUND_TEXTS:
            restrictive = list(dict.fromkeys(a for a in actions if a in RESTRICTIVE_ACTIONS))
            if restrictive:
                for key in GROUND_TEXTS[ground]:
                    if texts[key] is None and key not in p:
                        self.add(
                            f"{path}.{key}",
                            f"is missing: restrictive tier {', '.join(restrictive)} on {ground} needs it "
                            "for statements of reasons",
                        )
        thresholds = self.thresholds(p.get("thresholds"), f"{path}.thresholds", tiers) if "thresholds" in p else None
        if head is None and "thresholds" not in p:
            thresholds = MappingProxyType({})
        if len(self.problems) != before or tiers is None or thresholds is None or conditions is None or banks is None:
            return None
        # Every field was checked above (no new problem), so these casts only inform mypy.
        return Policy(
            id=cast(str, pid),
            title=cast(str, title),
            category=cast(str, category),
            category_specification=keywords,
            decision_ground=str(ground),
            head=cast("str | None", head),
            tiers=tiers,
            thresholds=thresholds,
            conditions=conditions,
            banks=banks,
            **texts,
        )

    def banks(self, value: Any, path: str) -> tuple[BankBinding, ...] | None:
        """Bank bindings: which bank's matches decide the policy, at what distance, with what action."""
        if not isinstance(value, list) or not value:
            self.add(path, f"must be a non-empty list of bank bindings, got {_kind(value)}")
            return None
        before = len(self.problems)
        out: list[BankBinding] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            b = self.mapping(raw, where, BANK_FIELDS)
            if b is None:
                continue
            bank = b.get("bank")
            if not isinstance(bank, str) or not _ID.match(bank):
                what = "is missing" if bank is None else f"{bank!r} is not a bank id (lower-case letters, digits and _)"
                self.add(f"{where}.bank", what)
                continue
            if bank in seen:
                self.add(f"{where}.bank", f"bank '{bank}' is bound twice (first at {path}[{seen[bank]}])")
                continue
            seen[bank] = i
            action = b.get("action")
            if action not in TIER_ACTIONS:
                what = "is missing" if action is None else f"unknown action {action!r}"
                self.add(f"{where}.action", f"{what} (allowed: {', '.join(TIER_ACTIONS)})")
                continue
            threshold = b.get("threshold", DEFAULT_BANK_THRESHOLD)
            if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 256:
                self.add(
                    f"{where}.threshold",
                    f"must be a whole number of bits in [0, 256] (PDQ distance; default {DEFAULT_BANK_THRESHOLD}), "
                    f"got {_kind(threshold)}",
                )
            visibility = self.visibility(where, action, b.get("visibility"))
            auto = b.get("fully_automated")
            self.automated(where, auto)
            allow = b.get("allow", [])
            allowed: list[str] = []
            if not isinstance(allow, list):
                self.add(f"{where}.allow", f"must be a list of allow-list bank ids, got {_kind(allow)}")
            else:
                for j, name in enumerate(allow):
                    if not isinstance(name, str) or not _ID.match(name):
                        self.add(f"{where}.allow[{j}]", f"{name!r} is not a bank id (lower-case letters, digits and _)")
                    elif name == bank:
                        self.add(f"{where}.allow[{j}]", f"bank '{bank}' cannot be its own allow-list")
                    else:
                        allowed.append(name)
            if len(self.problems) == before:
                out.append(
                    BankBinding(
                        bank=bank,
                        action=str(action),
                        fully_automated=bool(auto),
                        threshold=int(threshold),
                        visibility=visibility,
                        allow=tuple(dict.fromkeys(allowed)),
                    )
                )
        return tuple(out) if len(self.problems) == before else None

    def category(self, p: Mapping[str, Any], path: str) -> tuple[str | None, tuple[str, ...]]:
        category = p.get("category")
        known = isinstance(category, str) and category in dsa.CATEGORY_KEYWORDS
        if "category" in p and not known:
            self.add(
                f"{path}.category",
                f"unknown DSA category {category!r}{_hint(str(category), dsa.CATEGORIES, 'STATEMENT_CATEGORY_')} "
                "(see docs/policy-packs.md for the list)",
            )
        raw = p.get("category_specification", [])
        if not isinstance(raw, list):
            self.add(f"{path}.category_specification", f"must be a list of DSA keywords, got {_kind(raw)}")
            return (category if known else None), ()
        keywords: list[str] = []
        for i, kw in enumerate(raw):
            where = f"{path}.category_specification[{i}]"
            if not isinstance(kw, str) or kw not in dsa.KEYWORDS:
                self.add(where, f"unknown DSA keyword {kw!r}{_hint(str(kw), dsa.KEYWORDS, 'KEYWORD_')}")
            elif known and kw not in dsa.keywords_of(str(category)):
                self.add(
                    where,
                    f"keyword {kw} does not belong to category {category} "
                    f"(its keywords: {', '.join(dsa.keywords_of(str(category)))})",
                )
            else:
                keywords.append(kw)
        return (category if known else None), tuple(keywords)

    def conditions(self, value: Any, path: str) -> Conditions | None:
        if value is None:
            return Conditions()
        c = self.mapping(value, path, CONDITION_FIELDS)
        if c is None:
            return None
        before = len(self.problems)
        regions = self.market_list(c["regions"], f"{path}.regions") if "regions" in c else None
        markets = self.market_list(c["markets"], f"{path}.markets") if "markets" in c else None
        outside = c.get("outside_transfer_zone", False)
        if not isinstance(outside, bool):
            self.add(f"{path}.outside_transfer_zone", f"must be true or false, got {_kind(outside)}")
        if len(self.problems) != before:
            return None
        return Conditions(regions=regions, markets=markets, outside_transfer_zone=bool(outside))

    def tiers(self, value: Any, path: str) -> tuple[Tier, ...] | None:
        if not isinstance(value, list) or not value:
            self.add(path, f"must be a non-empty list of tiers, got {_kind(value)}")
            return None
        before = len(self.problems)
        out: list[Tier] = []
        last = -1
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            t = self.mapping(raw, where, TIER_FIELDS)
            if t is None:
                continue
            action = t.get("action")
            if action not in TIER_ACTIONS:
                self.add(f"{where}.action", f"unknown action {action!r} (allowed: {', '.join(TIER_ACTIONS)})")
                continue
            rank = TIER_ACTIONS.index(action)
            if rank <= last:
                self.add(
                    f"{where}.action",
                    f"'{action}' comes after '{TIER_ACTIONS[last]}'; tiers go once each, in the order "
                    f"{', '.join(TIER_ACTIONS)}",
                )
                continue
            last = rank
            visibility = self.visibility(where, action, t.get("visibility"))
            auto = t.get("fully_automated")
            if not self.automated(where, auto):
                continue
            out.append(Tier(action=action, visibility=visibility, fully_automated=bool(auto)))
        return tuple(out) if len(self.problems) == before else None

    def visibility(self, where: str, action: str, visibility: Any) -> Any:
        """The decision_visibility of a restrictive ``action`` (its default when absent); problems recorded."""
        if action == "review":
            if visibility is not None:
                self.add(f"{where}.visibility", "review is not restrictive and takes no decision_visibility")
        elif visibility is None:
            visibility = DEFAULT_VISIBILITY[action]
        elif visibility not in dsa.DECISION_VISIBILITIES:
            hint = _hint(str(visibility), dsa.DECISION_VISIBILITIES, "DECISION_VISIBILITY_")
            self.add(f"{where}.visibility", f"unknown decision_visibility {visibility!r}{hint}")
        return visibility

    def automated(self, where: str, auto: Any) -> bool:
        """Whether ``fully_automated`` is a boolean; a problem is recorded when it is not."""
        if isinstance(auto, bool):
            return True
        what = "is missing" if auto is None else f"must be true or false, got {_kind(auto)}"
        self.add(f"{where}.fully_automated", f"{what} (true: applied without a human; false: waits for review)")
        return False

    def thresholds(
        self, value: Any, path: str, tiers: tuple[Tier, ...] | None
    ) -> Mapping[str, Mapping[str, float]] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping of 'default', groups or markets to tier thresholds, got {_kind(value)}")
            return None
        before = len(self.problems)
        actions = tuple(t.action for t in tiers) if tiers is not None else None
        if DEFAULT_KEY not in value:
            self.add(f"{path}.{DEFAULT_KEY}", "is missing (every policy needs default thresholds)")
        out: dict[str, Mapping[str, float]] = {}
        for key, levels in value.items():
            where = f"{path}.{key}"
            if key != DEFAULT_KEY and not (isinstance(key, str) and mk.is_known(key)):
                self.add(where, _unknown_market(key))
                continue
            if not isinstance(levels, Mapping) or not levels:
                self.add(where, f"must map tier actions to thresholds, got {_kind(levels)}")
                continue
            row: dict[str, float] = {}
            for action, num in levels.items():
                at = f"{where}.{action}"
                if actions is not None and action not in actions:
                    self.add(at, f"unknown tier '{action}' (this policy's tiers: {', '.join(actions)})")
                    continue
                if isinstance(num, bool) or not isinstance(num, int | float) or math.isnan(num):
                    self.add(at, f"must be a number in [0, 1], got {_kind(num)}")
                    continue
                if not 0.0 <= float(num) <= 1.0:
                    self.add(at, f"{num} is outside [0, 1]")
                    continue
                row[str(action)] = float(num)
            out[str(key)] = MappingProxyType(row)
        if actions is not None and DEFAULT_KEY in out:
            for action in actions:
                if action not in out[DEFAULT_KEY] and action in value[DEFAULT_KEY]:
                    continue  # already reported as a bad number
                if action not in out[DEFAULT_KEY]:
                    self.add(f"{path}.{DEFAULT_KEY}.{action}", "is missing (default thresholds must cover every tier)")
        if len(self.problems) != before or actions is None:
            return None
        self.increasing(out, path, actions)
        return MappingProxyType(out) if len(self.problems) == before else None

    def increasing(self, table: Mapping[str, Mapping[str, float]], path: str, actions: tuple[str, ...]) -> None:
        """Resolved thresholds must rise strictly along the tiers in every market."""
        seen: set[str] = set()
        probe = Policy(
            id="_", title="_", category="_", category_specification=(), decision_ground="_", head="_",
            tiers=(), thresholds=table,
        )  # fmt: skip
        for market in (DEFAULT_KEY, *mk.ALL_MARKETS):
            resolved = probe.thresholds_with_source(market)
            for lo, hi in itertools.pairwise(actions):
                (v_lo, k_lo), (v_hi, k_hi) = resolved[lo], resolved[hi]
                if v_hi > v_lo:
                    continue
                # Blame the more specific of the two levels: that is the line to change.
                if _SPECIFICITY.get(k_hi, 4) >= _SPECIFICITY.get(k_lo, 4):
                    where, other = f"{path}.{k_hi}.{hi}", f"{lo} {v_lo:g}" + ("" if k_lo == k_hi else f" (from {k_lo})")
                    reason = f"{hi} {v_hi:g} is not above {other}"
                else:
                    where, other = f"{path}.{k_lo}.{lo}", f"{hi} {v_hi:g}" + ("" if k_lo == k_hi else f" (from {k_hi})")
                    reason = f"{lo} {v_lo:g} is not below {other}"
                if where not in seen:
                    seen.add(where)
                    self.add(where, f"thresholds must increase along the tiers: {reason}")


# default < GLOBAL < EEA < EU < a market code
_SPECIFICITY = {DEFAULT_KEY: 0, "GLOBAL": 1, "EEA": 2, "EU": 3}


def _unknown_market(name: Any) -> str:
    return f"unknown market or group {name!r} (groups: {', '.join(mk.GROUPS)}; markets: {', '.join(mk.ALL_MARKETS)})"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def validate(data: Any, *, source: str = "<pack>", text: str = "", heads: Sequence[str] | None = None) -> Pack:
    """Check a parsed pack document and return the typed :class:`Pack`.

    data: the YAML document as Python objects. source: the file name used in messages.
    text: the exact file text (stored in the lake and hashed). heads: the model's head
    names; when given, a policy reading another head is a problem.
    Raises :class:`InvalidPackError` listing every problem.
    """
    c = _Checker(source, heads)
    top = c.mapping(data, "", TOP_FIELDS) if isinstance(data, Mapping) else None
    if top is None:
        if not isinstance(data, Mapping):
            c.add("(top level)", f"must be a mapping with fields {', '.join(TOP_FIELDS)}, got {_kind(data)}")
        raise InvalidPackError(source, c.problems)
    for key in TOP_FIELDS:
        if key not in top:
            c.add(key, "is missing")
    pack_id = top.get("pack_id")
    if "pack_id" in top and (not isinstance(pack_id, str) or not _PACK_ID.match(pack_id)):
        c.add("pack_id", f"{pack_id!r} is not a pack id (lower-case letters, digits, '.', '_' and '-')")
    version = top.get("version")
    if "version" in top:
        if isinstance(version, int | float) and not isinstance(version, bool):
            c.add("version", f'must be a string; quote it (version: "{version}") so YAML does not read a number')
        elif not isinstance(version, str) or not _VERSION.match(version):
            c.add("version", f"{version!r} is not a version (letters, digits, '.', '+', '_' and '-')")
    governance = c.governance(top["governance"]) if "governance" in top else None
    policies: list[Policy] = []
    raw = top.get("policies")
    if "policies" in top and (not isinstance(raw, list) or not raw):
        c.add("policies", f"must be a non-empty list of policies, got {_kind(raw)}")
    elif isinstance(raw, list):
        first: dict[str, int] = {}
        for i, item in enumerate(raw):
            pid = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(pid, str):
                if pid in first:
                    c.add(f"policies[{i}].id", f"duplicate policy id '{pid}' (first at policies[{first[pid]}])")
                else:
                    first[pid] = i
            policy = c.policy(item, f"policies[{i}]")
            if policy is not None:
                policies.append(policy)
    if c.problems:
        raise InvalidPackError(source, c.problems)
    return Pack(
        pack_id=cast(str, pack_id),
        version=cast(str, version),
        governance=cast(Governance, governance),
        policies=tuple(policies),
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source=source,
    )
