"""``batchjobs policy``: check a pack before any work starts, and say what a new pack changes.

    batchjobs policy validate FILE_OR_NAME [--heads h1,h2,...]
    batchjobs policy diff OLD NEW [--json]
    batchjobs policy list
    batchjobs policy schema

FILE_OR_NAME is a path or a bundled pack name (``default``, ``election-eu``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines.policy import bundled_packs, changed_policies, describe, diff, load_pack, pack_json_schema


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="validate policy packs and compare two of them")
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    val = sub.add_parser("validate", help="check a pack; print every problem and exit non-zero if any")
    val.add_argument("pack", metavar="FILE", help="a pack YAML file or a bundled pack name")
    val.add_argument(
        "--heads",
        default=None,
        help="comma-separated head names of the scoring model; policies reading other heads are problems",
    )
    dif = sub.add_parser("diff", help="what changes from OLD to NEW, per policy, market and tier")
    dif.add_argument("old", metavar="OLD", help="a pack YAML file or a bundled pack name")
    dif.add_argument("new", metavar="NEW", help="a pack YAML file or a bundled pack name")
    dif.add_argument("--json", action="store_true", help="print the change records as JSON instead of words")
    sub.add_parser("list", help="list the bundled packs")
    sub.add_parser("schema", help="print the JSON Schema of a pack (for editors; the validator is the authority)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    actions = {"validate": _validate, "diff": _diff, "list": _list, "schema": _schema}
    return actions[args.policy_command](args)


def _validate(args: argparse.Namespace) -> int:
    heads = [h.strip() for h in args.heads.split(",") if h.strip()] if args.heads else None
    pack = load_pack(args.pack, heads=heads)
    print(
        f"{pack.source}: OK: {pack.policy_version}, {len(pack.policies)} policies "
        f"({', '.join(pack.policy_ids)}), effective {pack.governance.effective_date}, sha256 {pack.sha256}"
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    old, new = load_pack(args.old), load_pack(args.new)
    changes = diff(old, new)
    if args.json:
        record = {
            "old": old.policy_version,
            "new": new.policy_version,
            "decision_relevant_policies": list(changed_policies(changes)),
            "text_only_policies": [
                p for p in changed_policies(changes, decision_relevant=False) if p not in changed_policies(changes)
            ],
            "changes": [c.as_dict() for c in changes],
        }
        print(json.dumps(record, indent=2, default=str))
    else:
        print(describe(changes, old, new))
    return 0


def _list(args: argparse.Namespace) -> int:
    for name, path in bundled_packs().items():
        pack = load_pack(path)
        print(f"{name}\t{pack.policy_version}\t{path}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(pack_json_schema(), indent=2))
    return 0
