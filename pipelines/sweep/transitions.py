"""Old → new decision transitions per market and per market group × policy.

Per market, a transition is counted per (content_id, policy). Per group (EU, EEA, GLOBAL) an
item's state is its most severe action over the group's markets it is distributed in, so a
group row counts items, not item-market pairs. "Actioned" means restrictive: every tier but
``review`` (which only queues the item for a person) and ``none``.
"""

from __future__ import annotations

import polars as pl

from pipelines.markets import GROUPS

SEVERITY: dict[str, int] = {"none": 0, "review": 1, "label": 2, "demote": 3, "age_restrict": 4, "remove": 5}
_BY_LEVEL = {v: k for k, v in SEVERITY.items()}
RESTRICTIVE: tuple[str, ...] = ("label", "demote", "age_restrict", "remove")


def pairs(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Join old and new decisions on (content_id, market, policy_id).

    ``old`` and ``new``: content_id, market, policy_id, action. A key with no old decision
    (content never decided under this policy before) starts from ``none``.
    """
    return (
        new.select("content_id", "market", "policy_id", pl.col("action").alias("new_action"))
        .join(
            old.select("content_id", "market", "policy_id", pl.col("action").alias("old_action")),
            on=["content_id", "market", "policy_id"],
            how="left",
        )
        .with_columns(pl.col("old_action").fill_null("none"))
    )


def _group_states(p: pl.DataFrame) -> pl.DataFrame:
    parts = []
    sev = {k: v for k, v in SEVERITY.items()}
    for group, members in GROUPS.items():
        g = (
            p.filter(pl.col("market").is_in(list(members)))
            .group_by("content_id", "policy_id")
            .agg(
                pl.col("old_action").replace_strict(sev, return_dtype=pl.Int8).max().alias("o"),
                pl.col("new_action").replace_strict(sev, return_dtype=pl.Int8).max().alias("n"),
            )
            .select(
                pl.lit(group).alias("scope"),
                pl.lit("group").alias("scope_kind"),
                "content_id",
                "policy_id",
                pl.col("o").replace_strict(_BY_LEVEL, return_dtype=pl.String).alias("old_action"),
                pl.col("n").replace_strict(_BY_LEVEL, return_dtype=pl.String).alias("new_action"),
            )
        )
        parts.append(g)
    return pl.concat(parts)


def item_states(p: pl.DataFrame) -> pl.DataFrame:
    """Per market and per group: one row per (scope, content_id, policy_id) with old/new action."""
    markets = p.select(
        pl.col("market").alias("scope"),
        pl.lit("market").alias("scope_kind"),
        "content_id",
        "policy_id",
        "old_action",
        "new_action",
    )
    return pl.concat([markets, _group_states(p)])


def matrix(states: pl.DataFrame) -> pl.DataFrame:
    """Tier-by-tier transition counts: scope, scope_kind, policy_id, old_action, new_action, items."""
    return (
        states.group_by("scope", "scope_kind", "policy_id", "old_action", "new_action")
        .agg(pl.len().alias("items"))
        .sort("scope_kind", "scope", "policy_id", "old_action", "new_action")
    )


def summary(states: pl.DataFrame) -> pl.DataFrame:
    """The 2×2 (actioned/cleared before → after) and restriction counts per scope × policy."""
    old_r = pl.col("old_action").is_in(RESTRICTIVE)
    new_r = pl.col("new_action").is_in(RESTRICTIVE)
    more = pl.col("new_action").replace_strict(SEVERITY) > pl.col("old_action").replace_strict(SEVERITY)
    eea_owed = (pl.col("scope") == "EEA") & new_r & (pl.col("new_action") != pl.col("old_action"))
    return (
        states.group_by("scope", "scope_kind", "policy_id")
        .agg(
            pl.len().alias("items"),
            (old_r & new_r).sum().alias("actioned_to_actioned"),
            (old_r & ~new_r).sum().alias("actioned_to_cleared"),
            (~old_r & new_r).sum().alias("cleared_to_actioned"),
            (~old_r & ~new_r).sum().alias("cleared_to_cleared"),
            (pl.col("old_action") != pl.col("new_action")).sum().alias("changed"),
            (new_r & more).sum().alias("newly_restricted"),
            (old_r & ~new_r).sum().alias("restored"),
            eea_owed.sum().alias("statements_newly_owed"),
        )
        .sort("scope_kind", "scope", "policy_id")
    )
