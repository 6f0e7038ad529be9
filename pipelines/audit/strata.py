"""Review-sample strata: policy × origin region group × score band × changed decision.

The review sampler draws within these strata and the audit recomputes them for every
decision it counts, so sample and population are cut the same way. Defined once, here.
"""

from __future__ import annotations

import polars as pl

from pipelines import markets as mk

# Upper edges of the score bands; the last band is [0.9, 1].
BAND_EDGES: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
BANDS: tuple[str, ...] = ("0.0-0.3", "0.3-0.5", "0.5-0.7", "0.7-0.9", "0.9-1.0")
# Bands at or above this edge are oversampled: that is where actions are taken.
HIGH_FROM = 0.5
REGION_GROUPS: tuple[str, ...] = ("EU", "EEA_NON_EU", "OTHER")
_EEA_ONLY = tuple(m for m in mk.EEA if m not in mk.EU)


_GROUP_OF: dict[str, str] = {**{m: "EU" for m in mk.EU}, **{m: "EEA_NON_EU" for m in _EEA_ONLY}}


def region_group(region: pl.Expr) -> pl.Expr:
    """The origin region's group: EU, EEA outside the EU, or anything else (one hash lookup per row)."""
    return region.replace_strict(_GROUP_OF, default="OTHER", return_dtype=pl.String)


def band_code(score: pl.Expr) -> pl.Expr:
    """Index of the score band (0 = lowest); a null score falls in the lowest band (never actioned).

    Cheap (four float comparisons): big frames carry the code, small ones the label.
    """
    index = sum((score >= edge).cast(pl.UInt8) for edge in BAND_EDGES)
    return pl.when(score.is_null()).then(pl.lit(0, dtype=pl.UInt8)).otherwise(index).cast(pl.UInt8)


def band_label(code: pl.Expr) -> pl.Expr:
    return pl.lit(pl.Series(BANDS)).gather(code.cast(pl.UInt32))


def score_band(score: pl.Expr) -> pl.Expr:
    """The score band label of :data:`BANDS`."""
    return band_label(band_code(score))


def stratum(policy: pl.Expr, group: pl.Expr, band: pl.Expr, changed: pl.Expr) -> pl.Expr:
    """The stratum name ``policy|group|band|changed`` (``changed`` is ``changed``/``stable``)."""
    flag = pl.when(changed).then(pl.lit("changed")).otherwise(pl.lit("stable"))
    return pl.concat_str([policy, group, band, flag], separator="|")


def is_high(band: str) -> bool:
    return float(band.split("-")[0]) >= HIGH_FROM
