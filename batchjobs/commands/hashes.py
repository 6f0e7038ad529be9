"""batchjobs hashes: import, retract and list hash banks (lists of known material) in a lake."""

from __future__ import annotations

import argparse

from batchjobs.commands._common import add_lake, lake_from_args
from pipelines.hashes.banks import bank_infos, import_bank, retract_entries
from pipelines.hashes.rematch import lift_retracted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hashes", help="hash banks of known material: import a list, retract entries, list banks")
    inner = p.add_subparsers(dest="hashes_command", metavar="ACTION", parser_class=type(p))
    inner.required = True

    i = inner.add_parser("import", help="import a bank CSV (id,pdq,source) as the bank's next list version, once")
    add_lake(i)
    i.add_argument("--bank", required=True, help="bank id, e.g. known_csam (lower-case letters, digits, _)")
    i.add_argument("file", help="bank CSV: a header, then one 64-hex-digit pdq per line (docs/hashes.md)")
    i.set_defaults(run=run_import)

    r = inner.add_parser("retract", help="retract entries (a bank CSV or id1,id2,...) and lift matches that need them")
    add_lake(r)
    r.add_argument("--bank", required=True, help="bank id")
    r.add_argument("entries", metavar="FILE_OR_IDS", help="a bank CSV of hashes to retract, or external ids id1,id2")
    r.add_argument("--policy", help="pack whose bindings the lifted matches follow (default: the lake's latest pack)")
    r.set_defaults(run=run_retract)

    ls = inner.add_parser("list", help="banks with their live and retracted entries and list versions")
    add_lake(ls)
    ls.set_defaults(run=run_list)


def run_import(args: argparse.Namespace) -> int:
    lake = lake_from_args(args)
    print(import_bank(lake, args.bank, args.file).line())
    print(f"match the new entries against stored media: batchjobs sweep --lake {args.lake} --hashes {args.bank}")
    return 0


def run_retract(args: argparse.Namespace) -> int:
    lake = lake_from_args(args, create=False)
    change = retract_entries(lake, args.bank, args.entries)
    print(change.line())
    lifted = lift_retracted(lake, args.bank, policy=args.policy)
    print(f"lifted {lifted} hash-match decisions that relied only on retracted entries (model decisions stand)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    infos = bank_infos(lake_from_args(args, create=False))
    if not infos:
        print(f"no banks in {args.lake}; import one with: batchjobs hashes import --lake {args.lake} --bank NAME FILE")
        return 0
    print(f"{'bank':<24} {'live':>10} {'retracted':>10} {'version':>8}  last change (UTC)")
    for b in infos:
        print(f"{b.bank:<24} {b.live:>10} {b.retracted:>10} {b.list_version:>8}  {b.last_change:%Y-%m-%d %H:%M:%S}")
    return 0
