"""Review-sample strata: policy × origin region group × score band × changed decision.

The review sampler draws within these strata and the audit recomputes them for every
decision it counts, so sample and population are cut the same way. Defined once, here.

A current decision that a match against a list of known material took (``source =
hash_match``) has no model score: it gets a band of its own, :data:`HASH_BAND`, instead of a
score band. So hash-matched decisions form their own strata (a bank-only policy such as
``terrorist_content`` is sampled and gets a precision estimate), and the estimators pool them
in a cell of their own rather than with the model's lowest scores.
"""

from __future__ import annotations

import polars as pl

from pipelines import markets as mk

# Upper edges of the score bands; the last band is [0.9, 1].
BAND_EDGES: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
BANDS: tuple[str, ...] = ("0.0-0.3", "0.3-0.5", "0.5-0.7", "0.7-0.9", "0.9-1.0")
HASH_BAND = "hash_match"
"""The band of decisions taken by a known-material match (no model score); code ``len(BANDS)``."""
LABELS: tuple[str, ...] = (*BANDS, HASH_BAND)
"""Every band label, indexed by :func:`band_code`."""
# Bands at or above this edge are oversampled: that is where actions are taken. Matches of
# known material are actioned too (usually removed, fully automated): their band is high.
HIGH_FROM = 0.5
REGION_GROUPS: tuple[str, ...] = ("EU", "EEA_NON_EU", "OTHER")
_EEA_ONLY = tuple(m for m in mk.EEA if m not in mk.EU)


_REGION_SEED = 23
_EU_HASHES = pl.Series(list(mk.EU), dtype=pl.String).hash(seed=_REGION_SEED)
_EEA_ONLY_HASHES = pl.Series(list(_EEA_ONLY), dtype=pl.String).hash(seed=_REGION_SEED)


def region_group_code(region: pl.Expr) -> pl.Expr:
    """Index into :data:`REGION_GROUPS` of the origin region's group (UInt8), for frames of
    millions of rows: set lookups on a 64-bit hash of the region (a third of the cost of set
    lookups on the strings, a sixth of :func:`region_group`'s string replacement; a region taken
    for an EU or EEA one by a hash collision has a chance of about 1e-18)."""
    hashed = region.hash(seed=_REGION_SEED)
    return (
        pl.when(hashed.is_in(_EU_HASHES.implode()))
        .then(pl.lit(0, pl.UInt8))
        .when(hashed.is_in(_EEA_ONLY_HASHES.implode()))
        .then(pl.lit(1, pl.UInt8))
        .otherwise(pl.lit(2, pl.UInt8))
    )


def region_group_label(code: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(REGION_GROUPS)).gather(code.cast(pl.UInt32))


def region_group(region: pl.Expr) -> pl.Expr:
    """The origin region's group: EU, EEA outside the EU, or anything else."""
    return region_group_label(region_group_code(region))


def band_code(score: pl.Expr, source: pl.Expr | None = None) -> pl.Expr:
    """Index into :data:`LABELS`: the score band (0 = lowest), or the hash band for a hash match.

    A null score otherwise falls in the lowest band (never actioned). ``source`` (the decision's
    source column) None: every row is banded by its score. The hash band has the highest code, so
    a review unit's band (the maximum over its markets) is the hash band when any of its markets'
    current decisions is a match. Cheap (four float comparisons): big frames carry the code,
    small ones the label.
    """
    index = sum((score >= edge).cast(pl.UInt8) for edge in BAND_EDGES)
    code = pl.when(score.is_null()).then(pl.lit(0, dtype=pl.UInt8)).otherwise(index).cast(pl.UInt8)
    if source is None:
        return code
    hashed = pl.lit(len(BANDS), dtype=pl.UInt8)
    return pl.when(source == "hash_match").then(hashed).otherwise(code).cast(pl.UInt8)


def band_label(code: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(LABELS)).gather(code.cast(pl.UInt32))


def score_band(score: pl.Expr, source: pl.Expr | None = None) -> pl.Expr:
    """The band label of :data:`LABELS` (see :func:`band_code`)."""
    return band_label(band_code(score, source))


def stratum(policy: pl.Expr, group: pl.Expr, band: pl.Expr, changed: pl.Expr) -> pl.Expr:
    """The stratum name ``policy|group|band|changed`` (``changed`` is ``changed``/``stable``)."""
    flag = pl.when(changed).then(pl.lit("changed")).otherwise(pl.lit("stable"))
    return pl.concat_str([policy, group, band, flag], separator="|")


def is_high(band: str) -> bool:
    """True for the oversampled bands: scores of at least :data:`HIGH_FROM`, and the hash band."""
    return band == HASH_BAND or float(band.split("-")[0]) >= HIGH_FROM


HIGH_BANDS: tuple[str, ...] = tuple(b for b in LABELS if is_high(b))
