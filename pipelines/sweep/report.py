"""Write the sweep report: summary.parquet, transitions.parquet, report.json and index.html."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import polars as pl

from pipelines.report import Section, bar_chart, heatmap, lineage_block, page, paragraph, table
from pipelines.storage import staged_dir

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.sweep.run import SweepPlan

_SUMMARY_COLS = (
    "items", "actioned_to_actioned", "actioned_to_cleared", "cleared_to_actioned", "cleared_to_cleared",
    "newly_restricted", "restored", "statements_newly_owed",
)  # fmt: skip


def write_report(
    out_uri: str, plan: SweepPlan, summ: pl.DataFrame, mat: pl.DataFrame, lineage: dict[str, object], diff_words: str
) -> None:
    """Write the report into the folder or object-store URI ``out_uri``."""
    with staged_dir(out_uri) as out:
        _write(out, plan, summ, mat, lineage, diff_words)


def _write(
    out: Path, plan: SweepPlan, summ: pl.DataFrame, mat: pl.DataFrame, lineage: dict[str, object], diff_words: str
) -> None:
    summ.write_parquet(out / "summary.parquet")
    mat.write_parquet(out / "transitions.parquet")
    doc = {
        "old_policy_version": plan.old_pack.policy_version,
        "new_policy_version": plan.new_pack.policy_version,
        "re_decided_policies": list(plan.policies),
        "pack_diff": [c.as_dict() for c in plan.changes],
        "pack_diff_text": diff_words,
        "lineage": lineage,
        "summary": summ.to_dicts(),
        "transitions": mat.to_dicts(),
    }
    (out / "report.json").write_text(json.dumps(doc, indent=2, default=str))
    (out / "index.html").write_text(_html(plan, summ, mat, lineage, diff_words))


def _html(plan: SweepPlan, summ: pl.DataFrame, mat: pl.DataFrame, lineage: dict[str, object], words: str) -> str:
    groups = summ.filter(pl.col("scope_kind") == "group")
    markets = summ.filter(pl.col("scope_kind") == "market")
    policies = sorted(summ["policy_id"].unique().to_list())
    sections = [
        Section("What changed in the pack", "".join(paragraph(line) for line in words.splitlines() if line.strip())),
        Section("Plan", "".join(paragraph(line) for line in plan.describe().splitlines())),
    ]
    if summ.height:
        sections.append(
            Section(
                "Per group × policy",
                table(["group", "policy", *_SUMMARY_COLS], groups.select("scope", "policy_id", *_SUMMARY_COLS).rows()),
            )
        )
        rows = sorted(markets["scope"].unique().to_list())
        changed = {(r["scope"], r["policy_id"]): r["newly_restricted"] + r["restored"] for r in markets.to_dicts()}
        sections.append(
            Section(
                "Changed decisions per market × policy",
                heatmap(
                    rows, policies, [[changed.get((m, p)) for p in policies] for m in rows], fmt=lambda v: f"{v:.0f}"
                ),
            )
        )
        g = groups.filter(pl.col("scope") == "GLOBAL").sort("policy_id")
        sections.append(
            Section(
                "Newly restricted and restored items (GLOBAL)",
                bar_chart(
                    g["policy_id"].to_list(),
                    {"newly restricted": g["newly_restricted"].to_list(), "restored": g["restored"].to_list()},
                ),
            )
        )
        sections.append(
            Section(
                "Tier-by-tier transitions (groups)",
                table(
                    ["group", "policy", "old action", "new action", "items"],
                    mat.filter(pl.col("scope_kind") == "group")
                    .select("scope", "policy_id", "old_action", "new_action", "items")
                    .rows(),
                ),
            )
        )
        sections.append(
            Section(
                "Per market × policy",
                table(
                    ["market", "policy", *_SUMMARY_COLS], markets.select("scope", "policy_id", *_SUMMARY_COLS).rows()
                ),
            )
        )
    sections.append(Section("Lineage", lineage_block(lineage)))
    return page(
        f"Sweep {plan.old_pack.policy_version} → {plan.new_pack.policy_version}",
        sections,
        subtitle="Counts only: no item content appears in this report.",
    )
