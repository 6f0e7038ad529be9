"""Policy packs: load, validate, decide, diff and record them (see docs/policy-packs.md)."""

from __future__ import annotations

from pipelines.policy.decide import OUTPUT_COLUMNS, decide
from pipelines.policy.load import bundled_packs, load_default_pack, load_pack, parse_pack, resolve_pack
from pipelines.policy.model import Conditions, Governance, Pack, Policy, Tier
from pipelines.policy.validate import InvalidPackError, validate

__all__ = [
    "OUTPUT_COLUMNS",
    "Conditions",
    "Governance",
    "InvalidPackError",
    "Pack",
    "Policy",
    "Tier",
    "bundled_packs",
    "decide",
    "load_default_pack",
    "load_pack",
    "parse_pack",
    "resolve_pack",
    "validate",
]
