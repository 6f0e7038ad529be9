"""Stratified review samples: who reviews what, with the inclusion probability of each unit.

A unit is one (content_id, policy_id): a reviewer judges whether the item violates the
policy, whatever market it is shown in. Strata are policy × origin region group × score
band × changed decision (:mod:`pipelines.audit.strata`); a unit whose current decision in
any market is a match against known material (``source = hash_match``, no model score) is
in the band ``hash_match`` instead of a score band, so matches are drawn in strata of their
own and a policy decided by banks alone is sampled too. Each stratum draws ``per_stratum``
units, and ``oversample`` times as many in high-score bands, in the hash band and among
changed decisions, where errors cost most; a stratum smaller than its allocation is taken
whole. Inside a
stratum every unit has the same inclusion probability ``n_h / N_h``, which the audit's
estimators use.

The draw is deterministic: units are ranked by a seeded hash of their key and the first
``n_h`` of each stratum are taken, so the same seed on the same pinned table draws the
same sample (for a given polars version; the draw itself is stored, so audits never
redraw it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from pipelines.audit.buckets import ReadSpec, map_reduce, pinned_files
from pipelines.audit.config import SampleConfig
from pipelines.audit.current import COLUMNS, current_decisions, scan_decisions, with_strata
from pipelines.audit.strata import HIGH_BANDS, stratum
from pipelines.audit.versions import version_as_of
from pipelines.errors import BadConfigError
from pipelines.schema import DECISIONS
from pipelines.sink import commit_once


def units_from_decisions(current: pl.LazyFrame) -> pl.LazyFrame:
    """One unit per (content_id, policy_id) with the stratum columns of its current decisions."""
    units = current.group_by("content_id", "policy_id").agg(
        pl.col("region").first(),
        pl.col("__band").max(),
        pl.col("changed").any(),
        pl.col("score").max(),
    )
    return with_strata(units).drop("region", "__band")


def _framed(units: pl.DataFrame, *, per_stratum: int, seed: int, oversample: int) -> pl.DataFrame:
    """Units with ``stratum``, their seeded ``__rank`` and the stratum's allocation ``__alloc``."""
    high = pl.col("score_band").is_in(list(HIGH_BANDS))
    alloc = pl.when(high | pl.col("changed")).then(per_stratum * oversample).otherwise(per_stratum)
    return units.with_columns(
        stratum(pl.col("policy_id"), pl.col("region_group"), pl.col("score_band"), pl.col("changed")).alias("stratum"),
        pl.struct("content_id", "policy_id").hash(seed=seed).alias("__rank"),
        alloc.alias("__alloc"),
    )


def _first(framed: pl.DataFrame) -> pl.DataFrame:
    """Per stratum, the ``__alloc`` units of lowest (rank, content_id): the draw, or a bucket's candidates."""
    return framed.sort("stratum", "__rank", "content_id").filter(
        pl.int_range(pl.len()).over("stratum") < pl.col("__alloc")
    )


def _picked(candidates: pl.DataFrame, sizes: pl.DataFrame) -> pl.DataFrame:
    """The draw from every bucket's candidates and the strata sizes (stratum, stratum_size)."""
    picked = _first(candidates).join(sizes, on="stratum", how="left", maintain_order="left")
    n = pl.min_horizontal(pl.col("__alloc"), pl.col("stratum_size"))
    return picked.with_columns((n / pl.col("stratum_size")).alias("inclusion_prob")).drop("__rank", "__alloc")


def draw(units: pl.DataFrame, *, per_stratum: int, seed: int, oversample: int = 2) -> pl.DataFrame:
    """The stratified draw from ``units`` (columns content_id, policy_id, region_group, score_band, changed).

    Returns the drawn units with ``stratum``, ``stratum_size`` and ``inclusion_prob``.
    """
    framed = _framed(units, per_stratum=per_stratum, seed=seed, oversample=oversample)
    sizes = framed.group_by("stratum").agg(pl.len().cast(pl.Int64).alias("stratum_size"))
    return _picked(_first(framed), sizes)


def sample_bucket(
    rows: pl.DataFrame, before: datetime, per_stratum: int, seed: int, oversample: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One bucket's strata sizes and candidates (its first ``alloc`` units per stratum).

    A unit lives in one bucket, so the global draw (the first ``alloc`` units of each stratum by
    rank) is among the buckets' candidates, and strata sizes are sums: the merged draw equals
    :func:`draw` over every unit at once.
    """
    units = units_from_decisions(current_decisions(rows.lazy(), before=before).lazy()).collect()
    framed = _framed(units, per_stratum=per_stratum, seed=seed, oversample=oversample)
    sizes = framed.group_by("stratum").agg(pl.len().cast(pl.Int64).alias("stratum_size"))
    return sizes, _first(framed)


@dataclass(frozen=True)
class SampleSummary:
    sample_run: str
    decisions_version: int
    units: int
    strata: int
    committed: bool

    def line(self) -> str:
        verb = "drew" if self.committed else "found already drawn"
        return (
            f"review sample {self.sample_run}: {verb} {self.units} units in {self.strata} strata "
            f"from decisions v{self.decisions_version}"
        )


def sample_for_review(config: SampleConfig) -> SampleSummary:
    """Draw a stratified sample from the current decisions and commit it to ``review_samples``.

    Exactly once: the same seed, allocation and pinned decisions version name the same
    sample run and the same Delta transaction, so running the command twice commits once.
    """
    from datetime import UTC

    lake = config.lake
    as_of = config.as_of or datetime.now(UTC)
    version, _ = version_as_of(lake.path("decisions"), as_of)
    from pipelines.audit.versions import Pinned

    pinned = Pinned("decisions", lake.path("decisions"), version, None)
    decisions = scan_decisions(pinned)
    where = None
    if config.policies:
        known = set(decisions.select("policy_id").unique().collect()["policy_id"].to_list())
        unknown = [p for p in config.policies if p not in known]
        if unknown:
            raise BadConfigError(f"--policy: no decisions for {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        where = pl.col("policy_id").is_in(list(config.policies))
    assert version is not None  # scan_decisions raised otherwise
    full = pl.Schema(DECISIONS)
    spec = ReadSpec(pinned_files(pinned.uri, version), {c: full[c] for c in COLUMNS}, where)
    args = (as_of, config.per_stratum, config.seed, config.oversample)
    parts = list(map_reduce(spec, sample_bucket, args, use_ray=config.use_ray, buckets=config.buckets))
    sizes = pl.concat([s for s, _ in parts]).group_by("stratum").agg(pl.col("stratum_size").sum())
    drawn = _picked(pl.concat([c for _, c in parts], how="vertical_relaxed"), sizes)
    # The lake's location is not part of the key: a copied or moved lake names the same draw.
    key = f"decisions@v{version}|seed={config.seed}|n={config.per_stratum}|x{config.oversample}"
    key += "|" + ",".join(sorted(config.policies))
    run = "s" + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    rows = drawn.select(
        pl.concat_str([pl.lit(run), pl.col("policy_id"), pl.col("content_id")], separator=":").alias("sample_id"),
        "content_id",
        "policy_id",
        "stratum",
        pl.col("inclusion_prob").cast(pl.Float64),
        pl.col("stratum_size").cast(pl.Int64),
        pl.lit(as_of).dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("sampled_at"),
        pl.lit(config.seed, dtype=pl.Int64).alias("seed"),
        pl.lit(run).alias("sample_run"),
    )
    committed = commit_once(
        lake,
        "review_samples",
        rows.to_arrow(),
        app_id=f"review-sample/{run}",
        metadata={
            "job": "review-sample",
            "sample_run": run,
            "decisions_version": str(version),
            "seed": str(config.seed),
        },
    )
    return SampleSummary(
        sample_run=run,
        decisions_version=version,
        units=rows.height,
        strata=drawn["stratum"].n_unique(),
        committed=committed,
    )
