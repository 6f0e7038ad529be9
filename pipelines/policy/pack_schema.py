"""The published JSON Schema of a policy pack (draft 2020-12), built from the same constants.

Editors (e.g. the YAML language server) can use it for completion and early feedback;
``batchjobs policy schema`` prints it. It checks structure and enumerations only: the
rules across fields (thresholds increasing along the tiers after overrides, ground texts
for restrictive tiers, keyword belonging to its category, unique policy ids, heads the
model has) are enforced by :func:`pipelines.policy.validate.validate`, which is the
authority.
"""

from __future__ import annotations

from typing import Any

from pipelines import markets as mk
from pipelines.policy import dsa
from pipelines.policy.model import DEFAULT_BANK_THRESHOLD, DEFAULT_KEY, TIER_ACTIONS

SCHEMA_ID = "https://trustbatch.example.org/schemas/policy-pack.json"


def pack_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pack document."""
    text = {"type": "string", "minLength": 1}
    markets = {"type": "array", "minItems": 1, "items": {"enum": [*mk.GROUPS, *mk.ALL_MARKETS]}}
    tier_thresholds = {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"enum": list(TIER_ACTIONS)},
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
    }
    tier = {
        "type": "object",
        "required": ["action", "fully_automated"],
        "additionalProperties": False,
        "properties": {
            "action": {"enum": list(TIER_ACTIONS)},
            "visibility": {"enum": [*dsa.DECISION_VISIBILITIES, None]},
            "fully_automated": {"type": "boolean"},
        },
    }
    binding = {
        "type": "object",
        "required": ["bank", "action", "fully_automated"],
        "additionalProperties": False,
        "properties": {
            "bank": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "threshold": {"type": "integer", "minimum": 0, "maximum": 256, "default": DEFAULT_BANK_THRESHOLD},
            "action": {"enum": list(TIER_ACTIONS)},
            "fully_automated": {"type": "boolean"},
            "visibility": {"enum": [*dsa.DECISION_VISIBILITIES, None]},
            "allow": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}},
        },
    }
    policy = {
        "type": "object",
        "required": ["id", "title", "category", "decision_ground"],
        # A head needs tiers and thresholds; a policy without a head is decided by its banks.
        "anyOf": [{"required": ["head", "tiers", "thresholds"]}, {"required": ["banks"]}],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "title": text,
            "category": {"enum": list(dsa.CATEGORIES)},
            "category_specification": {"type": "array", "items": {"enum": list(dsa.KEYWORDS)}},
            "decision_ground": {"enum": list(dsa.DECISION_GROUNDS)},
            "illegal_content_legal_ground": text,
            "illegal_content_explanation": text,
            "incompatible_content_ground": text,
            "incompatible_content_explanation": text,
            "head": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "banks": {"type": "array", "minItems": 1, "items": binding},
            "conditions": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"regions": markets, "markets": markets, "outside_transfer_zone": {"type": "boolean"}},
            },
            "tiers": {"type": "array", "minItems": 1, "maxItems": len(TIER_ACTIONS), "items": tier},
            "thresholds": {
                "type": "object",
                "required": [DEFAULT_KEY],
                "propertyNames": {"enum": [DEFAULT_KEY, *mk.GROUPS, *mk.ALL_MARKETS]},
                "additionalProperties": tier_thresholds,
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "trustbatch policy pack",
        "type": "object",
        "required": ["pack_id", "version", "governance", "policies"],
        "additionalProperties": False,
        "properties": {
            "pack_id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$"},
            "version": {"type": "string", "pattern": "^[0-9A-Za-z][0-9A-Za-z.+_-]*$"},
            "governance": {
                "type": "object",
                "required": ["effective_date", "owner", "approver", "rationale"],
                "additionalProperties": False,
                "properties": {
                    "effective_date": {"type": "string", "format": "date"},
                    "owner": text,
                    "approver": text,
                    "rationale": text,
                },
            },
            "policies": {"type": "array", "minItems": 1, "items": policy},
        },
    }
