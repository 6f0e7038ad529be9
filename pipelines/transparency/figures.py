"""The lake's figures for one reporting period, read at pinned table versions.

Everything the parts need, computed once: own-initiative measures with their pack mapping
(:mod:`pipelines.transparency.measures`), complaints as they stood at the period's end, and
the accuracy estimates of each automated system on the automated decisions as they were
made (the audit's weighted review estimators, on the decisions of sources ``model`` and
``hash_match`` only: decisions of record correct the current decision, not what the
automation did).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from pipelines import markets as mk
from pipelines.audit.accuracy import CELL, estimate_domains
from pipelines.audit.current import COLUMNS as AUDIT_COLUMNS
from pipelines.audit.current import current_decisions as automated_current
from pipelines.audit.current import with_strata
from pipelines.audit.packs import load_packs
from pipelines.audit.review import labelled_units
from pipelines.audit.versions import Pinned, version_as_of
from pipelines.complaints.current import AUTOMATED_SOURCES
from pipelines.errors import BadConfigError, BadInputError
from pipelines.lake import Lake
from pipelines.policy import Pack
from pipelines.policy.model import DEFAULT_VISIBILITY, RESTRICTIVE_ACTIONS
from pipelines.schema import DECISIONS
from pipelines.transparency.measures import measures

TABLES: tuple[str, ...] = ("decisions", "policy_packs", "complaints", "review_samples", "review_labels")
ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
# v1 categories and keywords that the Annex I templates name differently.
LEGACY_CATEGORY: dict[str, str] = {
    "STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
    "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
    "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
}
LEGACY_KEYWORD: dict[str, str] = {
    "KEYWORD_ONLINE_BULLYING_INTIMIDATION": "KEYWORD_CYBER_BULLYING_INTIMIDATION",
    "KEYWORD_STALKING": "KEYWORD_CYBER_STALKING",
    "KEYWORD_NON_CONSENSUAL_ITEMS_DEEPFAKE": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",
}


@dataclass(frozen=True)
class Period:
    """A reporting period, both dates inclusive (as the templates write it: ``YYYY-MM-DD/YYYY-MM-DD``)."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise BadConfigError(f"--period: {self.last} is before {self.first}; write FIRST/LAST (both inclusive)")

    @classmethod
    def parse(cls, text: str) -> Period:
        parts = text.split("/")
        try:
            if len(parts) != 2:
                raise ValueError
            return cls(date.fromisoformat(parts[0].strip()), date.fromisoformat(parts[1].strip()))
        except ValueError:
            raise BadConfigError(
                f"--period {text!r}: write two dates, both inclusive, as YYYY-MM-DD/YYYY-MM-DD"
            ) from None

    @property
    def text(self) -> str:
        return f"{self.first.isoformat()}/{self.last.isoformat()}"

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: midnight UTC after the last day."""
        return datetime(self.last.year, self.last.month, self.last.day, tzinfo=UTC) + timedelta(days=1)


@dataclass(frozen=True)
class Figures:
    """What the parts are filled from."""

    period: Period
    pins: dict[str, Pinned]
    packs: dict[str, tuple[Pack, str]]
    measures: pl.DataFrame  # one row per measure begun in the period, with its pack mapping
    complaints: pl.DataFrame  # complaints lodged in the period (EU/EEA markets), as at its end
    accuracy: pl.DataFrame  # per system (and language): precision/recall/accuracy with intervals
    policies: pl.DataFrame  # per policy version × policy: ground, category, keyword, title
    visibilities: frozenset[str]  # visibilities the packs can impose (their columns are applicable)
    systems: tuple[str, ...]  # automated systems with decisions in the period
    sample_run: str | None
    pin_time: datetime


def pin(lake: Lake, as_of: datetime) -> dict[str, Pinned]:
    out = {}
    for table in TABLES:
        uri = lake.path(table)
        version, at = version_as_of(uri, as_of)
        out[table] = Pinned(table=table, uri=uri, version=version, committed_at=at)
    return out


def scan(pinned: Pinned, schema: dict[str, pl.DataType] | None = None) -> pl.LazyFrame:
    if pinned.version is None:
        empty = pl.DataFrame(schema=schema or pl.DataFrame(DECISIONS.empty_table()).schema)
        return empty.lazy()
    return pl.scan_delta(pinned.uri, version=pinned.version)


def policy_table(packs: dict[str, tuple[Pack, str]]) -> tuple[pl.DataFrame, frozenset[str]]:
    """Per (policy_version, policy_id): part, category, keywords, title; and every restrictive visibility."""
    rows, visible = [], set()
    for version, (pack, _) in sorted(packs.items()):
        for p in pack.policies:
            keywords = [LEGACY_KEYWORD.get(k, k) for k in p.category_specification]
            for tier in p.tiers:
                if tier.action in RESTRICTIVE_ACTIONS:
                    visible.add(tier.visibility or DEFAULT_VISIBILITY[tier.action])
            vis = {
                a: (
                    next((t.visibility for t in p.tiers if t.action == a and t.visibility), None)
                    or DEFAULT_VISIBILITY[a]
                )
                for a in RESTRICTIVE_ACTIONS
            }
            rows.append(
                {
                    "policy_version": version, "policy_id": p.id, "title": p.title,
                    "part": 5 if p.decision_ground == ILLEGAL else 6,
                    "category": LEGACY_CATEGORY.get(p.category, p.category), "keywords": keywords,
                    **{f"vis_{a}": v for a, v in vis.items()},
                }
            )  # fmt: skip
    schema: dict[str, pl.DataType] = {
        "policy_version": pl.String(), "policy_id": pl.String(), "title": pl.String(), "part": pl.Int64(),
        "category": pl.String(), "keywords": pl.List(pl.String),
        **{f"vis_{a}": pl.String() for a in sorted(RESTRICTIVE_ACTIONS)},
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema), frozenset(visible)


def _with_mapping(found: pl.DataFrame, policies: pl.DataFrame) -> pl.DataFrame:
    joined = found.join(policies, on=["policy_version", "policy_id"], how="left")
    vis = pl.lit(None, dtype=pl.String)
    for a in sorted(RESTRICTIVE_ACTIONS):
        vis = pl.when(pl.col("action") == a).then(pl.col(f"vis_{a}").fill_null(DEFAULT_VISIBILITY[a])).otherwise(vis)
    return joined.with_columns(vis.alias("visibility")).drop([f"vis_{a}" for a in RESTRICTIVE_ACTIONS])


def complaints_in(pinned: Pinned, period: Period) -> pl.DataFrame:
    """Complaints lodged in the period about EU/EEA markets, each as its latest row; outcomes resolved later are pending."""
    schema = {"complaint_id": pl.String, "content_id": pl.String, "market": pl.String, "policy_id": pl.String,
              "lodged_at": pl.Datetime("us", "UTC"), "basis": pl.String, "outcome": pl.String,
              "resolved_at": pl.Datetime("us", "UTC"), "new_action": pl.String,
              "ingested_at": pl.Datetime("us", "UTC")}  # fmt: skip
    frame = (
        scan(pinned, schema)  # type: ignore[arg-type]
        .select(list(schema))
        .sort("ingested_at")
        .unique("complaint_id", keep="last", maintain_order=True)
        .filter(
            (pl.col("lodged_at") >= period.start)
            & (pl.col("lodged_at") < period.end)
            & pl.col("market").is_in(list(mk.EEA))
        )
        .collect()
    )
    late = pl.col("resolved_at").is_null() | (pl.col("resolved_at") >= period.end)
    return frame.with_columns(
        pl.when(late).then(None).otherwise(pl.col("outcome")).alias("outcome"),
        pl.when(late).then(None).otherwise(pl.col("resolved_at")).alias("resolved_at"),
    )


def accuracy(
    decisions: pl.LazyFrame, pins: dict[str, Pinned], period: Period, *, draws: int, seed: int
) -> tuple[pl.DataFrame, tuple[str, ...], str | None]:
    """Estimates per system and per (system, language) on the automated decisions in force as made.

    Population: for each EU/EEA key, the latest decision of an automated source decided in
    the period (what the automation did, whatever a review or an appeal did later); labelled
    units: the audit's review draw. Returns (estimates with a ``language`` column that is
    null on the per-system rows, the systems, the review draw's id).
    """
    automated = pl.col("source").is_in(list(AUTOMATED_SOURCES)) & pl.col("market").is_in(list(mk.EEA))
    auto = decisions.filter(automated).select(list(dict.fromkeys([*AUDIT_COLUMNS, "source"])))
    frame = automated_current(auto, before=period.end).filter(pl.col("decided_at") >= period.start)
    frame = with_strata(frame).with_columns(
        pl.concat_str([pl.col("source"), pl.col("model_name")], separator=":").alias("system"),
        (pl.col("action") != "none").alias("flagged"),
        pl.col("language").fill_null("unknown"),
    )
    systems = tuple(sorted(frame["system"].unique().to_list()))
    units, run = labelled_units(pins["review_samples"], pins["review_labels"])
    labelled = frame.join(units, on=["content_id", "policy_id"], how="inner")
    parts = []
    for keys in (["system"], ["system", "language"]):
        pop = frame.group_by([*keys, *CELL]).agg(pl.len().alias("m"))
        est = estimate_domains(pop, labelled.select(*keys, *CELL, "content_id", "y"), keys, draws=draws, seed=seed)
        if "language" not in keys:
            est = est.with_columns(pl.lit(None, dtype=pl.String).alias("language"))
        parts.append(est.select("system", "language", *[c for c in est.columns if c not in ("system", "language")]))
    return pl.concat(parts, how="vertical_relaxed"), systems, run


def compute(lake: Lake, period: Period, *, as_of: datetime, draws: int = 2000, seed: int = 20260101) -> Figures:
    pins = pin(lake, as_of)
    if pins["decisions"].version is None:
        raise BadInputError(
            f"no decisions table at {pins['decisions'].uri} as of {as_of.isoformat()}: run `batchjobs backfill` first, "
            "or pin a later --as-of"
        )
    packs = load_packs(pins["policy_packs"])
    policies, visible = policy_table(packs)
    decisions = scan(pins["decisions"])
    found = _with_mapping(measures(decisions, start=period.start, end=period.end), policies)
    est, systems, run = accuracy(decisions, pins, period, draws=draws, seed=seed)
    return Figures(
        period=period,
        pins=pins,
        packs=packs,
        measures=found,
        complaints=complaints_in(pins["complaints"], period),
        accuracy=est,
        policies=policies,
        visibilities=visible | frozenset(found["visibility"].drop_nulls().to_list()),
        systems=systems,
        sample_run=run,
        pin_time=as_of,
    )
