"""Old → new decision transitions per market and per market group × policy.

Per market, a transition is counted per (content_id, policy). Per group (EU, EEA, GLOBAL) an
item's state is its most severe action over the group's markets it is distributed in, so a
group row counts items, not item-market pairs. "Actioned" means restrictive: every tier but
``review`` (which only queues the item for a person) and ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipelines.buckets import hash_columns
from pipelines.markets import GROUPS
from pipelines.schema import DECISION_KEY as KEY

SEVERITY: dict[str, int] = {"none": 0, "review": 1, "label": 2, "demote": 3, "age_restrict": 4, "remove": 5}
_BY_LEVEL = {v: k for k, v in SEVERITY.items()}
RESTRICTIVE: tuple[str, ...] = ("label", "demote", "age_restrict", "remove")


def pairs(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Join old and new decisions on (content_id, market, policy_id).

    ``old`` and ``new``: content_id, market, policy_id, action. A key with no old decision
    (content never decided under this policy before) starts from ``none``.
    """
    return (
        new.select(*KEY, pl.col("action").alias("new_action"))
        .join(old.select(*KEY, pl.col("action").alias("old_action")), on=list(KEY), how="left")
        .with_columns(pl.col("old_action").fill_null("none"))
    )


def _split(p: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(units decided in one market, units decided in several) of the pairs ``p``."""
    # Most items are decided in one market per policy: their group state is that row as it is.
    unit = hash_columns(["content_id", "policy_id"], seed=1).is_duplicated()
    multi = p.select(unit.alias("__m"))["__m"]
    return p.filter(~multi), p.filter(multi)


def _reduced(several: pl.DataFrame, members: Sequence[str]) -> pl.DataFrame:
    """Units decided in several markets: their most severe old and new action over ``members``."""
    return (
        several.filter(pl.col("market").is_in(list(members)))
        .group_by("content_id", "policy_id")
        .agg(
            pl.col("old_action").replace_strict(SEVERITY, return_dtype=pl.Int8).max().alias("o"),
            pl.col("new_action").replace_strict(SEVERITY, return_dtype=pl.Int8).max().alias("n"),
        )
        .select(
            "content_id",
            "policy_id",
            pl.col("o").replace_strict(_BY_LEVEL, return_dtype=pl.String).alias("old_action"),
            pl.col("n").replace_strict(_BY_LEVEL, return_dtype=pl.String).alias("new_action"),
        )
    )


def _group_states(p: pl.DataFrame) -> pl.DataFrame:
    single, several = _split(p)
    parts = []
    for group, members in GROUPS.items():
        reduced = _reduced(several, members)
        rows = pl.concat([single.filter(pl.col("market").is_in(list(members))).select(reduced.columns), reduced])
        parts.append(rows.select(pl.lit(group).alias("scope"), pl.lit("group").alias("scope_kind"), *reduced.columns))
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


def transition_matrix(p: pl.DataFrame) -> pl.DataFrame:
    """``matrix(item_states(p))``, without a row per scope and item: per-market counts, group
    counts of single-market units summed from them, and only multi-market units reduced per group."""
    keys = ["policy_id", "old_action", "new_action"]
    single, several = _split(p)
    per_market = p.group_by("market", *keys).agg(pl.len().alias("items"))
    singles = single.group_by("market", *keys).agg(pl.len().alias("items"))
    member = pl.DataFrame(
        [(m, g) for g, members in GROUPS.items() for m in members],
        schema={"market": pl.String, "scope": pl.String},
        orient="row",
    )
    grouped = [singles.join(member, on="market").select("scope", *keys, "items")]
    for group, members in GROUPS.items():
        multi = _reduced(several, members).group_by(keys).agg(pl.len().alias("items"))
        grouped.append(multi.select(pl.lit(group).alias("scope"), *keys, "items"))
    groups = (
        pl.concat(grouped, how="vertical_relaxed")
        .group_by("scope", *keys)
        .agg(pl.col("items").sum())
        .with_columns(pl.lit("group").alias("scope_kind"))
    )
    markets = per_market.select(pl.col("market").alias("scope"), pl.lit("market").alias("scope_kind"), *keys, "items")
    cols = ["scope", "scope_kind", *keys, "items"]
    return (
        pl.concat([markets.select(cols), groups.select(cols)], how="vertical_relaxed")
        .with_columns(pl.col("items").cast(pl.UInt32))
        .sort("scope_kind", "scope", "policy_id", "old_action", "new_action")
    )


def matrix(states: pl.DataFrame) -> pl.DataFrame:
    """Tier-by-tier transition counts: scope, scope_kind, policy_id, old_action, new_action, items."""
    return (
        states.group_by("scope", "scope_kind", "policy_id", "old_action", "new_action")
        .agg(pl.len().alias("items"))
        .sort("scope_kind", "scope", "policy_id", "old_action", "new_action")
    )


def summary(states: pl.DataFrame) -> pl.DataFrame:
    """The 2×2 (actioned/cleared before → after) and restriction counts per scope × policy."""
    return summarize(matrix(states))


def summarize(counts: pl.DataFrame) -> pl.DataFrame:
    """:func:`summary` from the transition counts of :func:`matrix` (every figure is a function of
    the old and new action, so the small matrix is enough)."""
    old_r = pl.col("old_action").is_in(RESTRICTIVE)
    new_r = pl.col("new_action").is_in(RESTRICTIVE)
    more = pl.col("new_action").replace_strict(SEVERITY) > pl.col("old_action").replace_strict(SEVERITY)
    eea_owed = (pl.col("scope") == "EEA") & new_r & (pl.col("new_action") != pl.col("old_action"))
    n = pl.col("items").cast(pl.UInt32)

    def count(mask: pl.Expr) -> pl.Expr:
        return n.filter(mask).sum().cast(pl.UInt32)

    return (
        counts.group_by("scope", "scope_kind", "policy_id")
        .agg(
            n.sum().cast(pl.UInt32).alias("items"),
            count(old_r & new_r).alias("actioned_to_actioned"),
            count(old_r & ~new_r).alias("actioned_to_cleared"),
            count(~old_r & new_r).alias("cleared_to_actioned"),
            count(~old_r & ~new_r).alias("cleared_to_cleared"),
            count(pl.col("old_action") != pl.col("new_action")).alias("changed"),
            count(new_r & more).alias("newly_restricted"),
            count(old_r & ~new_r).alias("restored"),
            count(eea_owed).alias("statements_newly_owed"),
        )
        .sort("scope_kind", "scope", "policy_id")
    )
