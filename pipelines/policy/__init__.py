"""Policy packs: load, validate, decide, diff and record them (see docs/policy-packs.md)."""

from __future__ import annotations

from pipelines.policy.decide import OUTPUT_COLUMNS, decide
from pipelines.policy.diff import PolicyChange, changed_policies, describe, diff
from pipelines.policy.load import bundled_packs, load_default_pack, load_pack, parse_pack, resolve_pack
from pipelines.policy.model import Conditions, Governance, Pack, Policy, Tier
from pipelines.policy.pack_schema import pack_json_schema
from pipelines.policy.registry import record_pack, recorded
from pipelines.policy.validate import InvalidPackError, validate

__all__ = [
    "OUTPUT_COLUMNS",
    "Conditions",
    "Governance",
    "InvalidPackError",
    "Pack",
    "Policy",
    "PolicyChange",
    "Tier",
    "bundled_packs",
    "changed_policies",
    "decide",
    "describe",
    "diff",
    "load_default_pack",
    "load_pack",
    "pack_json_schema",
    "parse_pack",
    "record_pack",
    "recorded",
    "resolve_pack",
    "validate",
]
