"""Fill the Annex I templates from the lake's figures and write them, with the pinned versions beside them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines.lake import Lake
from pipelines.transparency.figures import Figures, Period, compute
from pipelines.transparency.templates import PARTS, Row, expand, load_template, render

OWN = "Number of measures taken at the provider's own initiative "
SOLELY = "Number of measures taken after detection with solely automated means "
VISIBILITY_COLUMN: dict[str, str] = {
    "DECISION_VISIBILITY_CONTENT_REMOVED": "Visibility restriction Removal",
    "DECISION_VISIBILITY_CONTENT_DISABLED": "Visibility restriction Disable",
    "DECISION_VISIBILITY_CONTENT_DEMOTED": "Visibility restriction Demoted",
    "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED": "Visibility restriction Age restricted",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED": "Visibility restriction Interaction restricted",
    "DECISION_VISIBILITY_CONTENT_LABELLED": "Visibility restriction Labelled ",
    "DECISION_VISIBILITY_OTHER": "Visibility restriction Other",
}
BASIS_INDICATOR: dict[str, str] = {
    "visibility": "Complaint regarding a decision to remove or disable access to or restrict visibility of information",
    "provision": "Complaint regarding a decision to suspend or terminate the provision of the service",
    "account": "Complaint regarding a decision to suspend or terminate an account ",
    "monetisation": "Complaint regarding a decision to restrict the ability to monetise information",
    "notice_no_action": "Complaint regarding a decision not to take action on a notice submitted in accordance with "
    "Article 16",
    "trusted_flagger_no_action": "Complaint regarding a decision not to take action on a notice submitted by a Trusted "
    "Flagger in accordance with Article 16",
}
COMPLAINTS_TOTAL = "Number of complaints submitted to the internal-complaints mechanism"
NEW_RESTRICTIONS = "Number of restrictions newly imposed as a result of an internal complaint"
OUTCOME_SCOPE = {"Decisions upheld": "upheld", "Decisions partially reversed": "partially_reversed",
                 "Decisions reversed": "reversed", "Decision omitted": "omitted"}  # fmt: skip
METHOD = (
    "Weighted estimate from a stratified human-review sample (policy x origin region group x score band x changed "
    "decision), each labelled unit weighted by its cell's decision count over its labelled units (inverse inclusion "
    "probability calibrated to known counts); 95% interval from Beta posteriors on Kish effective counts per score "
    "band x flagged cell. Computed on the automated decisions as they were made (sources model and hash_match), "
    "EU/EEA markets, decided in the period; a unit is one (item, policy)."
)


def _own(m: pl.DataFrame) -> pl.DataFrame:
    return m.filter(pl.col("source") != "appeal")


def _hours(values: pl.Series) -> float | None:
    return None if values.len() == 0 else float(values.median())  # type: ignore[arg-type]


def _fill_identity(rows: Sequence[Row], service: str, period: Period) -> None:
    for row in rows:
        if "Service" in row.header:
            row.set("Service", service)
        if "Reporting period" in row.header:
            row.set("Reporting period", period.text)
        if 'Description of the sub-category "Other"' in row.header:
            row.set('Description of the sub-category "Other"', None)


def _clear_values(rows: Sequence[Row], start: int) -> None:
    """Blank every value cell (the templates' placeholders such as 'Free text' are not values)."""
    for row in rows:
        for i in range(start, len(row.cells)):
            row.cells[i] = ""


def _part1(rows: list[Row], f: Figures, provider: str | None, published: date | None) -> None:
    values = {
        "Name of the service provider": provider,
        "Date of the publication of the report": published.isoformat() if published else None,
        "Date of the publication of the latest previous report": None,
        "Starting date of reporting period": f.period.first.isoformat(),
        "Ending date of reporting period": f.period.last.isoformat(),
    }
    for row in rows:
        row.set("Value", values.get(row.get("Indicator")))


def _category_rows(rows: Sequence[Row], column: str) -> list[tuple[Row, str, str | None]]:
    """(row, category, keyword or None for a category / TOTAL row) in template order."""
    out: list[tuple[Row, str, str | None]] = []
    current = "TOTAL"
    for row in rows:
        code = row.get(column)
        if code.startswith("KEYWORD_"):
            out.append((row, current, code))
        else:
            current = code
            out.append((row, code, None))
    return out


def _keyword_of(categories: list[tuple[Row, str, str | None]]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for _, cat, kw in categories:
        if kw is not None and kw != "KEYWORD_OTHER":
            known.setdefault(cat, set()).add(kw)
    return known


def _assign(m: pl.DataFrame, known: dict[str, set[str]]) -> pl.DataFrame:
    """Each measure's template keyword: the first of its policy's keywords listed under its category, else OTHER."""
    keyword = [
        next((k for k in (kws or []) if k in known.get(cat or "", set())), "KEYWORD_OTHER")
        for cat, kws in zip(m["category"].to_list(), m["keywords"].to_list(), strict=True)
    ]
    return m.with_columns(pl.Series("keyword", keyword, dtype=pl.String))


def _part_own_initiative(rows: list[Row], f: Figures, part: int) -> None:
    column = rows[0].header[3]
    cats = _category_rows(rows, column)
    known = _keyword_of(cats)
    m = _assign(_own(f.measures).filter(pl.col("part") == part), known)
    unknown = _own(f.measures).filter(pl.col("part").is_null()).height
    in_part = {c for _, c, _ in cats}
    applicable = {VISIBILITY_COLUMN[v] for v in f.visibilities if v in VISIBILITY_COLUMN}
    outside = m.filter(~pl.col("category").is_in(list(in_part)))
    for row, cat, kw in cats:
        if cat == "TOTAL":
            sub = m
        elif kw is None:
            sub = m.filter(pl.col("category") == cat)
        else:
            sub = m.filter((pl.col("category") == cat) & (pl.col("keyword") == kw))
        row.set(OWN, sub.height)
        row.set(SOLELY, int(sub["solely_automated"].sum()))
        for vis, col in VISIBILITY_COLUMN.items():
            row.set(col, sub.filter(pl.col("visibility") == vis).height if col in applicable else None)
        policies = sorted({f"{t} ({p})" for t, p in sub.select("title", "policy_id").iter_rows() if t})
        if kw == "KEYWORD_OTHER" and sub.height:
            row.set(
                'Description of the sub-category "Other"',
                "Policies without a more specific keyword: " + "; ".join(policies),
            )
        if cat == "TOTAL":
            note = (
                "One measure per (item, policy) when a restriction of the item in an EU/EEA market begins in the "
                "period (re-deciding a restriction in force is not a new measure); restriction type = the most "
                "severe action when it begins. Monetary, provision and account restrictions are not imposed by "
                "this service (blank)."
            )
            if outside.height:
                note += f" {outside.height} measures fall under categories this part has no row for (in TOTAL only)."
            if unknown:
                note += (
                    f" {unknown} measures (in Parts 5-6) decided by pack versions missing from policy_packs "
                    "have no ground or category and are counted in Part 8 only."
                )
            row.set(f"Contextual Information on {OWN}", note)
        elif kw is None and policies:
            row.set(f"Contextual Information on {OWN}", "Policies: " + "; ".join(policies))


def _part2(rows: list[Row], f: Figures) -> None:
    by_cat: dict[str, list[str]] = {}
    by_kw: dict[tuple[str, str], list[str]] = {}
    for r in f.policies.unique(["policy_id", "category"]).sort("policy_id").iter_rows(named=True):
        label = f"{r['title']} ({r['policy_id']}, {'illegal content' if r['part'] == 5 else 'terms and conditions'})"
        by_cat.setdefault(r["category"], []).append(label)
        kws = r["keywords"] or []
        by_kw.setdefault((r["category"], kws[0] if kws else "KEYWORD_OTHER"), []).append(label)
    col = "Category of illegal content / incompatible with the terms and conditions"
    for row, cat, kw in _category_rows(rows, col):
        names = by_cat.get(cat) if kw is None else by_kw.get((cat, kw))
        row.set("Contextual information", ("Policies: " + "; ".join(sorted(set(names)))) if names else None)


def _part7(rows: list[Row], f: Figures) -> None:
    c = f.complaints
    hours = (pl.col("resolved_at") - pl.col("lodged_at")).dt.total_seconds(fractional=True) / 3600.0

    def figures(sub: pl.DataFrame, scope: str) -> object:
        if scope == "Total number":
            return sub.height
        if scope == "Median time":
            done = sub.filter(pl.col("outcome").is_not_null() & (pl.col("outcome") != "omitted"))
            return _hours(done.select(hours.alias("h"))["h"])
        return sub.filter(pl.col("outcome") == OUTCOME_SCOPE[scope]).height

    imposed = f.measures.filter(pl.col("source") == "appeal").height
    for row in rows:
        indicator, scope = row.get("Indicator"), row.get("Scope")
        if indicator == COMPLAINTS_TOTAL:
            row.set("Value", figures(c, scope))
            if scope == "Total number":
                row.set(
                    "Contextual Information",
                    f"Complaints lodged in the period about EU/EEA markets; {int(c['outcome'].null_count())} still "
                    "pending at the period's end. Median time: hours from lodging to decision, omitted excluded.",
                )
        elif indicator == NEW_RESTRICTIONS:
            row.set("Value", imposed)
        else:
            basis = next((b for b, text in BASIS_INDICATOR.items() if text == indicator), None)
            if basis is not None:
                row.set("Value", figures(c.filter(pl.col("basis") == basis), scope))


def _estimate(f: Figures, system: str | None, language: str | None, metric: str) -> tuple[float | None, str | None]:
    if system is None:
        return None, "No automated decisions in the EU/EEA in the period."
    cond = pl.col("system") == system
    cond = cond & (pl.col("language").is_null() if language is None else pl.col("language") == language)
    hit = f.accuracy.filter(cond)
    if hit.height and hit[metric][0] is None and metric == "recall" and system.startswith("hash"):
        # A bank decides only what it matches: known material missing from its lists never gets a
        # decision, so its recall cannot come from the decisions' review sample.
        return None, f"System {system}: recall not estimable (a hash list decides only the material it lists)."
    if hit.height == 0 or hit[metric][0] is None:
        return None, f"System {system}: not estimable (no labelled review unit in the period)."
    r = hit.row(0, named=True)
    note = (
        f"System {system}: {metric} {r[metric]:.4f}, 95% interval [{r[f'{metric}_low']:.4f}, {r[f'{metric}_high']:.4f}], "
        f"{r[f'{metric}_n']} labelled units (Kish n_eff {r[f'{metric}_n_eff'] or 0:.1f})"
        + ("; some strata had no labelled unit (prior-imputed)" if r[f"{metric}_imputed"] else "")
        + ". Method: Part 11."
    )
    return float(r[metric]), note


def _part8(rows: list[Row], f: Figures, vlop: bool) -> None:
    m = f.measures
    own = _own(m)
    metric_of = {
        "Accuracy of the automated means - Accuracy": "accuracy",
        "Accuracy of the automated means - Precision": "precision",
        "Accuracy of the automated means - Recall": "recall",
    }
    for row in rows:
        indicator, scope = row.get("Indicator").strip(), row.get("Scope").strip()
        language = row.scope if row.scope and row.scope.islower() else None
        if scope.startswith("NAM"):
            continue  # notices: this system has no notice-and-action data
        if language is not None and not vlop:
            continue
        pool = own if scope == "Own-initiative" else m
        if language is not None:
            pool = pool.filter(pl.col("language") == language)
        if indicator == "Number of measures solely taken by automated means":
            row.set("Value", int(pool["solely_automated"].sum()))
        elif indicator == "Number of measures not taken by automated means":
            row.set("Value", pool.height - int(pool["solely_automated"].sum()))
        elif indicator in metric_of:
            value, note = _estimate(f, row.system, language, metric_of[indicator])
            row.set("Value", value)
            row.set("Contextual Information", note)


def _part11(rows: list[Row], f: Figures) -> None:
    own = _own(f.measures)
    types = own.group_by("action").len().sort("action")
    type_text = ", ".join(f"{a}: {n}" for a, n in types.iter_rows()) or "none"
    models = sorted(set(f.systems))
    tiers = sorted({v for v in f.visibilities})
    est = f.accuracy.filter(pl.col("language").is_null())
    acc_lines = []
    for r in est.iter_rows(named=True):
        parts = []
        for metric in ("precision", "recall", "accuracy"):
            if r[metric] is not None:
                parts.append(f"{metric} {r[metric]:.3f} [{r[f'{metric}_low']:.3f}, {r[f'{metric}_high']:.3f}]")
        acc_lines.append(f"{r['system']}: " + (", ".join(parts) if parts else "not estimable (no labelled units)"))
    texts = {
        "Summary of the content moderation engaged in at the providers’ own initiative": (
            f"Own-initiative restrictions begun in the period, by type: {type_text}. Restriction types the policies "
            f"can impose: {', '.join(tiers) or 'none'}. Labels attach context to content without removing it."
        ),
        "Qualitative description of the automated means": (
            "Automated systems with decisions in the period: " + (", ".join(models) or "none") + ". Each classifier "
            "scores content per policy; the policy pack maps scores to action tiers by per-market thresholds; "
            "hash matching compares perceptual hashes of media with lists of known illegal material."
        ),
        "Qualitative description of indicators of accuracy and possible rate of error of automated means": (
            METHOD
            + " Review draw: "
            + (f.sample_run or "none")
            + ". Estimates (value [95% interval]): "
            + ("; ".join(acc_lines) or "none")
            + "."
        ),
        "Specification of the precise purposes to apply automated means": (
            "Detecting content that may be illegal or incompatible with the terms and conditions, per policy of the "
            "pack, and applying the action tier reached where the tier is marked fully automated."
        ),
        "Safeguards applied to the use of automated means": (
            "Tiers not marked fully automated wait for human review; stratified samples of automated decisions are "
            "reviewed by people to estimate accuracy; internal complaints are decided by people and their outcomes "
            "supersede automated decisions."
        ),
    }
    for row in rows:
        text = texts.get(row.get("Indicator"))
        row.set("Value", text[:5000] if text else None)


def write_transparency_report(
    lake: Lake,
    period: Period | str,
    *,
    service: str,
    provider: str | None = None,
    published: date | None = None,
    vlop: bool = False,
    out: str,
    as_of: datetime | None = None,
    draws: int = 2000,
) -> dict[str, str]:
    """Write the 11 Annex I CSVs and ``versions.json`` into ``out``; returns part name -> path.

    Tables are pinned at their last version committed at or before ``as_of`` (default now);
    ``versions.json`` records them, so the same files can be recomputed by time travel.
    """
    per = Period.parse(period) if isinstance(period, str) else period
    pin_time = as_of or datetime.now(UTC)
    figures = compute(lake, per, as_of=pin_time, draws=draws)
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".transparency-", dir=dest))
    paths: dict[str, str] = {}
    try:
        for stem in PARTS:
            template = load_template(stem)
            rows = expand(template, systems=figures.systems)
            _fill_identity(rows, service, per)
            _clear_values(rows, template.value_start)
            fill = {
                "Part_1_summary": lambda r: _part1(r, figures, provider, published),
                "Part_2_categories_names": lambda r: _part2(r, figures),
                "Part_5_own_initiative_illegal": lambda r: _part_own_initiative(r, figures, 5),
                "Part_6_own_initiative_TC": lambda r: _part_own_initiative(r, figures, 6),
                "Part_7_appeals_and_recidivism": lambda r: _part7(r, figures),
                "Part_8_automated_means": lambda r: _part8(r, figures, vlop),
                "Part_11_qualitative": lambda r: _part11(r, figures),
            }.get(stem)
            if fill is not None:
                fill(rows)
            (tmp / f"{stem}.csv").write_bytes(render(template, rows).encode("utf-8"))
            paths[stem] = str(dest / f"{stem}.csv")
        side = {
            "report": "DSA transparency report, Annex I of Implementing Regulation (EU) 2024/2835",
            "service": service,
            "provider": provider,
            "reporting_period": per.text,
            "as_of": pin_time.isoformat(),
            "generated_at": datetime.now(UTC).isoformat(),
            "vlop": vlop,
            "table_versions": {
                t: {
                    "uri": p.uri,
                    "version": p.version,
                    "committed_at": p.committed_at.isoformat() if p.committed_at else None,
                }
                for t, p in figures.pins.items()
            },
            "policy_versions": {v: sha for v, (_, sha) in sorted(figures.packs.items())},
            "automated_systems": list(figures.systems),
            "review_sample_run": figures.sample_run,
            "measures": figures.measures.height,
            "complaints": figures.complaints.height,
        }
        (tmp / "versions.json").write_text(json.dumps(side, indent=1) + "\n", encoding="utf-8")
        paths["versions"] = str(dest / "versions.json")
        for name in [*(f"{s}.csv" for s in PARTS), "versions.json"]:
            os.replace(tmp / name, dest / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return paths
