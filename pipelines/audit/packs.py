"""Policy packs as the audit saw them: parsed from the ``policy_packs`` table at its pinned version.

The pack text stored in the lake (not the file on disk today) is what decided, so ground and
explanation texts, titles and tier visibilities come from there.
"""

from __future__ import annotations

import polars as pl

from pipelines.audit.versions import Pinned
from pipelines.policy import Pack, parse_pack

# Reports show counts only for these (no score distributions, no accuracy estimates).
COUNTS_ONLY_CATEGORIES = frozenset({"STATEMENT_CATEGORY_PROTECTION_OF_MINORS"})
COUNTS_ONLY_POLICIES = frozenset({"child_safety"})


def load_packs(pinned: Pinned) -> dict[str, tuple[Pack, str]]:
    """``policy_version`` -> (parsed pack, sha256) for every pack version in the table."""
    if pinned.version is None:
        return {}
    frame = pl.read_delta(pinned.uri, version=pinned.version, columns=["policy_version", "sha256", "text"])
    out: dict[str, tuple[Pack, str]] = {}
    for version, sha, text in frame.unique("policy_version").iter_rows():
        out[version] = (parse_pack(text, source=f"policy_packs:{version}"), sha)
    return out


def counts_only(policy_id: str, packs: dict[str, tuple[Pack, str]]) -> bool:
    """Child-safety policies: reports show counts only."""
    if policy_id in COUNTS_ONLY_POLICIES:
        return True
    for pack, _ in packs.values():
        if policy_id in pack.policy_ids and pack.policy(policy_id).category in COUNTS_ONLY_CATEGORIES:
            return True
    return False
