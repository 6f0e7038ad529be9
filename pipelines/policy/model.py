"""Typed, frozen view of a validated policy pack.

Objects here are only built by :func:`pipelines.policy.validate.validate`, so every value
is already checked. Threshold overrides are resolved here and only here (the decision
function, the diff and the validator all call :meth:`Policy.thresholds_for`).

Override precedence, most specific first: a market code (``DE``) beats the group ``EU``,
which beats ``EEA``, which beats ``GLOBAL``, which beats ``default``. Resolution is per
tier: an override that names only ``remove`` keeps the other tiers of the level below.
A market that no override names (including markets this project does not know) uses the
default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines import markets as mk

# Tier actions in order of severity (ACTIONS without "none").
TIER_ACTIONS: tuple[str, ...] = ("review", "label", "demote", "age_restrict", "remove")
RESTRICTIVE_ACTIONS: frozenset[str] = frozenset(TIER_ACTIONS) - {"review"}
DEFAULT_VISIBILITY: dict[str, str] = {
    "label": "DECISION_VISIBILITY_CONTENT_LABELLED",
    "demote": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "age_restrict": "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "remove": "DECISION_VISIBILITY_CONTENT_REMOVED",
}
DEFAULT_KEY = "default"
# Groups from least to most specific; a market code is more specific than any group.
GROUP_PRECEDENCE: tuple[str, ...] = ("GLOBAL", "EEA", "EU")


def override_chain(market: str) -> tuple[str, ...]:
    """Threshold keys that apply to ``market``, least specific first (``default`` first)."""
    chain = [DEFAULT_KEY]
    chain += [g for g in GROUP_PRECEDENCE if market in mk.GROUPS[g]]
    if market in mk.ALL_MARKETS:
        chain.append(market)
    return tuple(chain)


@dataclass(frozen=True)
class Governance:
    """Who decided the pack, when it takes effect, and why."""

    effective_date: dt.date
    owner: str
    approver: str
    rationale: str


@dataclass(frozen=True)
class Tier:
    """One action tier of a policy.

    action: one of :data:`TIER_ACTIONS`.
    visibility: the Transparency Database ``decision_visibility`` value (None for review).
    fully_automated: True if the action applies without a human; False if it waits for review.
    """

    action: str
    visibility: str | None
    fully_automated: bool


@dataclass(frozen=True)
class Conditions:
    """When a policy applies to an item in a market; empty conditions always hold.

    regions: the item's origin region must be one of these countries (groups expanded).
    markets: the policy applies only in these markets (groups expanded).
    outside_transfer_zone: the policy applies only in markets outside the transfer zone of
        the item's origin region (:func:`pipelines.markets.transfer_zone`).
    """

    regions: tuple[str, ...] | None = None
    markets: tuple[str, ...] | None = None
    outside_transfer_zone: bool = False

    @property
    def empty(self) -> bool:
        return self.regions is None and self.markets is None and not self.outside_transfer_zone

    def holds(self, region: str, market: str) -> bool:
        """Reference (row-at-a-time) semantics; :func:`decide` evaluates the same vectorised."""
        if self.regions is not None and region not in self.regions:
            return False
        if self.markets is not None and market not in self.markets:
            return False
        return not (self.outside_transfer_zone and market in mk.transfer_zone(region))


DEFAULT_BANK_THRESHOLD = 31
"""Largest PDQ distance that matches when a binding gives none (PDQ's and HMA's default)."""


@dataclass(frozen=True)
class BankBinding:
    """A hash bank bound to a policy: a match against the bank decides the policy.

    bank: the bank id (``hash_banks.bank_id``), e.g. ``known_csam``.
    action: the tier action a match takes (one of :data:`TIER_ACTIONS`).
    fully_automated: True if the action applies without a human; False if it waits for review.
    threshold: largest Hamming distance (0-256) between a stored hash and a bank entry that matches.
    visibility: the Transparency Database ``decision_visibility`` of a restrictive action.
    allow: allow-list banks: an item that matches one of them (same threshold) is not matched.
    """

    bank: str
    action: str
    fully_automated: bool
    threshold: int = DEFAULT_BANK_THRESHOLD
    visibility: str | None = None
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """One policy: what it prohibits, on what ground, and what follows at which score."""

    id: str
    title: str
    category: str
    category_specification: tuple[str, ...]
    decision_ground: str
    head: str | None
    """The model head whose score this policy reads; None for a policy decided by banks alone."""
    tiers: tuple[Tier, ...]
    # key ("default", a group or a market) -> tier action -> threshold, as written.
    thresholds: Mapping[str, Mapping[str, float]]
    conditions: Conditions = field(default_factory=Conditions)
    illegal_content_legal_ground: str | None = None
    illegal_content_explanation: str | None = None
    incompatible_content_ground: str | None = None
    incompatible_content_explanation: str | None = None
    banks: tuple[BankBinding, ...] = ()
    """Hash banks whose matches decide this policy (source ``hash_match``)."""

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(t.action for t in self.tiers)

    def tier(self, action: str) -> Tier:
        for t in self.tiers:
            if t.action == action:
                return t
        raise KeyError(action)

    def thresholds_with_source(self, market: str) -> dict[str, tuple[float, str]]:
        """Resolved threshold per tier for ``market`` and the key that supplied it."""
        out: dict[str, tuple[float, str]] = {}
        for key in override_chain(market):
            for action, value in self.thresholds.get(key, {}).items():
                out[action] = (value, key)
        return out

    def thresholds_for(self, market: str) -> dict[str, float]:
        """Resolved threshold per tier action for ``market`` (see module docstring)."""
        return {a: v for a, (v, _) in self.thresholds_with_source(market).items()}


@dataclass(frozen=True)
class Pack:
    """A validated policy pack, with the exact text it was read from and its SHA-256."""

    pack_id: str
    version: str
    governance: Governance
    policies: tuple[Policy, ...]
    text: str
    sha256: str
    source: str

    @property
    def policy_version(self) -> str:
        """``<pack id>@<version>``, the value decisions carry."""
        return f"{self.pack_id}@{self.version}"

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.policies)

    @property
    def heads(self) -> tuple[str, ...]:
        """The model heads this pack reads, in policy order, without repeats."""
        return tuple(dict.fromkeys(p.head for p in self.policies if p.head is not None))

    @property
    def model_policies(self) -> tuple[Policy, ...]:
        """The policies decided from a model head's score (every policy but bank-only ones)."""
        return tuple(p for p in self.policies if p.head is not None)

    def bindings(self, bank: str | None = None) -> tuple[tuple[Policy, BankBinding], ...]:
        """(policy, binding) of every bank binding, or only those of ``bank``, in pack order."""
        return tuple((p, b) for p in self.policies for b in p.banks if bank is None or b.bank == bank)

    @property
    def banks(self) -> tuple[str, ...]:
        """Bank ids bound to some policy (allow-list banks not included), without repeats."""
        return tuple(dict.fromkeys(b.bank for _, b in self.bindings()))

    def policy(self, policy_id: str) -> Policy:
        for p in self.policies:
            if p.id == policy_id:
                return p
        raise KeyError(policy_id)
