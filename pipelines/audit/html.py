"""The audit's index.html: summary, heat map, per-policy charts, per-language accuracy, gaps, lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from pipelines.audit.aggregate import SOURCE_COUNT_COLS
from pipelines.audit.quantiles import EXACT_MAX, K, error_bound
from pipelines.report import Section, bar_chart, heatmap, interval_chart, lineage_block, page, paragraph, table
from pipelines.schema import ACTIONS

if TYPE_CHECKING:
    from pipelines.audit.run import Computed


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _ci(row: dict[str, object], metric: str) -> str | None:
    v, lo, hi = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if v is None:
        return None
    assert isinstance(v, float) and isinstance(lo, float) and isinstance(hi, float)
    return f"{v:.3f} [{lo:.3f}–{hi:.3f}]"


def _summary(c: Computed, statements: int) -> Section:
    rows = c.rows
    markets = rows.filter(pl.col("region_kind") == "market")
    groups = rows.filter(pl.col("region_kind") == "group")
    lin = c.lineage
    period = lin["period"]
    assert isinstance(period, dict)
    text = (
        f"Period {period['from'] or 'start'} to {period['to']} (decided_at), tables pinned as of {lin['as_of']}. "
        f"{int(markets['decisions'].sum()):,} current decisions in {markets['region'].n_unique()} markets, "
        f"{int(markets['actioned'].sum()):,} with an action; {statements:,} statements of reasons (EU/EEA). "
        f"Precision and recall come from {lin['labelled_units']} labelled review units "
        f"(sample {lin['review_sample_run'] or 'none'})."
    )
    # With --by, each group × policy has one row per breakdown value: show the breakdown.
    extra = [d for d in ("content_type", "language") if d in rows.columns]
    cols = [
        "region",
        "policy",
        *extra,
        "items",
        "failed",
        "actioned",
        "model detections",
        "hash matches actioned",
        "fully automated",
        "precision [95%]",
        "recall [95%]",
    ]
    body = [
        [
            r["region"], r["policy_id"], *(r[d] for d in extra), r["items_scored"], r["items_failed"], r["actioned"],
            r["model_detections"], r["hash_matches_actioned"], r["share_fully"], _ci(r, "precision"),
            _ci(r, "recall"),
        ]
        for r in groups.iter_rows(named=True)
    ]  # fmt: skip
    note = paragraph(
        "Items are referred to by content id and SHA-256 only; no text, image or frame of any item appears in this "
        "report. Child-safety rows show counts only. Group rows count each item once (items) and each item × market "
        "decision once (actions).",
        note=True,
    )
    return Section("Summary", paragraph(text) + table(cols, body) + note)


def _heat(c: Computed) -> Section:
    rows = c.rows.with_columns(
        pl.when(pl.col("decisions") > 0).then(pl.col("actioned") / pl.col("decisions")).alias("rate")
    )
    policies = sorted(rows["policy_id"].unique().to_list())
    regions = (
        rows.select("region", "region_kind")
        .unique()
        .sort(pl.col("region_kind").replace_strict({"group": 0, "market": 1}, return_dtype=pl.Int8), "region")["region"]
        .to_list()
    )
    if "content_type" in rows.columns or "language" in rows.columns:
        rows = rows.group_by("region", "policy_id").agg(
            (pl.col("actioned").sum() / pl.col("decisions").sum()).alias("rate")
        )
    lookup = {(r, p): v for r, p, v in rows.select("region", "policy_id", "rate").iter_rows()}
    values = [[lookup.get((r, p)) for p in policies] for r in regions]
    svg = heatmap(regions, policies, values, title="Share of decisions with an action", fmt=_pct, vmax=None)
    return Section("Region × policy", svg)


def _sources(c: Computed) -> Section:
    """Current decisions by source per region × policy: known-material matches beside the model's detections."""
    counts = ["decisions", *SOURCE_COUNT_COLS]
    kind = pl.col("region_kind").replace_strict({"group": 0, "market": 1}, return_dtype=pl.Int8)
    rows = (
        c.rows.group_by("region", "region_kind", "policy_id")
        .agg(pl.col(counts).sum())
        .filter(pl.col("decisions") > 0)
        .sort(kind, "region", "policy_id")
    )
    cols = [
        "region", "policy", "decisions", "by the model", "model detections", "hash matches", "hash matches actioned",
        "of record",
    ]  # fmt: skip
    body = [[r["region"], r["policy_id"], *(r[k] for k in counts)] for r in rows.iter_rows(named=True)]
    text = paragraph(
        "Current decisions by what took them. Model detections: the model's decisions with an action. Hash "
        "matches: decisions taken by a match against a list of known material (a bank), and those with an action "
        "(a match lifted after its list entry was retracted leaves action none). Of record: human review and "
        "appeal outcomes. Each decision counts under the source of its current decision only (appeal > human "
        "review > hash match > model). A policy decided by banks alone has precision but no recall estimate: "
        "material missing from its lists is never decided.",
        note=True,
    )
    return Section("Hash matches and model detections per region × policy", text + table(cols, body))


def _policies(c: Computed) -> list[Section]:
    out = [Section("Per policy", paragraph("Actions by tier per group, and estimated accuracy with 95% intervals."))]
    groups = c.rows.filter(pl.col("region_kind") == "group")
    if "content_type" in groups.columns or "language" in groups.columns:
        groups = groups.group_by("region", "policy_id", "counts_only").agg(
            pl.col(f"action_{a}").sum() for a in ACTIONS if a != "none"
        )
    for policy in sorted(groups["policy_id"].unique().to_list()):
        g = groups.filter(pl.col("policy_id") == policy).sort("region")
        labels = g["region"].to_list()
        series = {a: g[f"action_{a}"].cast(pl.Float64).to_list() for a in ACTIONS if a != "none"}
        series = {a: v for a, v in series.items() if any(x for x in v)}
        body = bar_chart(labels, series, title=f"{policy}: decisions by action tier") if series else ""
        if not series:
            body += paragraph("No action taken in the period.", note=True)
        if bool(g["counts_only"].any()):
            body += paragraph("Counts only (child safety): no scores or accuracy estimates are shown.", note=True)
        elif "precision" in g.columns:
            lab, est, lo, hi = [], [], [], []
            for r in g.iter_rows(named=True):
                for metric in ("precision", "recall"):
                    lab.append(f"{r['region']} {metric}")
                    est.append(r.get(metric))
                    lo.append(r.get(f"{metric}_low"))
                    hi.append(r.get(f"{metric}_high"))
            body += interval_chart(lab, est, lo, hi, title=f"{policy}: precision and recall (95% intervals)")
        out.append(Section(policy, body, level=3))
    return out


def _languages(c: Computed) -> Section:
    lang = c.by_language
    cols = ["language", "policy", "decisions", "labelled", "accuracy [95%]", "precision [95%]", "recall [95%]"]
    body = [
        [r["language"], r["policy_id"], r["decisions"], r["accuracy_n"], _ci(r, "accuracy"), _ci(r, "precision"),
         _ci(r, "recall")]
        for r in lang.iter_rows(named=True)
    ]  # fmt: skip
    shown = lang.filter(pl.col("accuracy").is_not_null())
    chart = ""
    if shown.height:
        chart = interval_chart(
            [f"{a} · {b}" for a, b in shown.select("language", "policy_id").iter_rows()],
            shown["accuracy"].to_list(),
            shown["accuracy_low"].to_list(),
            shown["accuracy_high"].to_list(),
            title="Accuracy by language (95% intervals)",
        )
    note = paragraph("DSA Art. 42(2)(c): indicators of accuracy of automated means, per official language.", note=True)
    return Section("Accuracy per language", note + chart + table(cols, body))


def _coverage(c: Computed) -> Section:
    gaps = table(["market", "items failed", "without id"], [list(r) for r in c.coverage.iter_rows()])
    kinds = table(["stage", "error", "dead letters"], [list(r) for r in c.dead_letter_kinds.iter_rows()])
    text = paragraph(
        "Items that were meant to be scored but failed (dead letters) and have no decision by the end of the period.",
        note=True,
    )
    return Section("Coverage gaps", text + gaps + kinds)


def _complaints(c: Computed) -> Section:
    """Complaints, reversals, median time to resolve, and automated vs not, per market × policy."""
    acted = (
        c.rows.filter(pl.col("region_kind") == "market")
        .group_by(pl.col("region").alias("market"), "policy_id")
        .agg(
            pl.col("actioned").sum(),
            pl.col("automated_fully").sum().alias("fully"),
            (pl.col("automated_partially").sum() + pl.col("automated_not").sum()).alias("not_fully"),
        )
    )
    figures = c.complaints.join(acted, on=["market", "policy_id"], how="full", coalesce=True).filter(
        (pl.col("complaints").fill_null(0) > 0) | (pl.col("actioned").fill_null(0) > 0)
    )
    cols = [
        "market", "policy", "actioned", "solely automated", "not solely automated", "complaints", "reversals",
        "upheld", "pending", "median hours to resolve",
    ]  # fmt: skip
    body = [
        [
            r["market"], r["policy_id"], r["actioned"] or 0, r["fully"] or 0, r["not_fully"] or 0,
            r["complaints"] or 0, r["reversals"] or 0, r["upheld"] or 0, r["pending"] or 0,
            None if r["median_hours_to_resolve"] is None else round(float(r["median_hours_to_resolve"]), 1),
        ]
        for r in figures.sort("market", "policy_id").iter_rows(named=True)
    ]  # fmt: skip
    total = int(c.complaints["complaints"].sum())
    reversals = int(c.complaints["reversals"].sum())
    text = paragraph(
        f"{total:,} internal complaints (DSA Art. 20) lodged in the period, {reversals:,} reversed in full or in part. "
        "Solely automated: actioned decisions taken without human involvement (automated = FULLY); not solely "
        "automated: a person took or confirmed them (PARTIALLY, NOT_AUTOMATED: reviews and appeals). Median time: "
        "hours from lodging to the outcome, over complaints resolved by the period's end (omitted excluded).",
        note=True,
    )
    return Section("Complaints and automation per market × policy", text + table(cols, body))


def _method() -> Section:
    return Section(
        "Method",
        paragraph(
            "Current decision: per (content_id, market, policy_id), among rows decided before the period end, the "
            "latest row of the highest-precedence source (appeal > human review > hash match > model), kept if "
            "decided inside the period. Precision and recall: stratified review sample "
            "(policy × origin region group × score band × changed decision; hash matches, which have no score, "
            "in a band of their own), inclusion-probability weights "
            "calibrated to the known decision counts, 95% intervals from Beta posteriors on Kish effective counts "
            "per score band × flagged cell. Counts are exact. Score and hour quantiles are exact (linear "
            f"interpolation) for a region × policy of up to {EXACT_MAX:,} decisions; above that they come from a "
            f"deterministic mergeable summary (k = {K:,}) whose rank error is at most levels / k of the decisions "
            f"(levels = log2(n / k) + 1: at most {100 * error_bound(10**7):.2f}% at 10 million decisions, "
            f"{100 * error_bound(10**10):.2f}% at 10 billion). See docs/audit.md."
        ),
    )


def render(c: Computed, *, statements: int) -> str:
    sections = [_summary(c, statements), _heat(c), _sources(c), *_policies(c), _languages(c), _complaints(c)]
    sections.append(_coverage(c))
    sections.append(_method())
    sections.append(Section("Lineage", lineage_block(c.lineage)))
    return page("Compliance audit", sections, subtitle="trustbatch · DSA transparency and accuracy report")
