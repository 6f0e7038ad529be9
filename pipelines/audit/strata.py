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


def region_group(region: pl.Expr) -> pl.Expr:
    """The origin region's group: EU, EEA outside the EU, or anything else."""
    return (
        pl.when(region.is_in(list(mk.EU)))
        .then(pl.lit("EU"))
        .when(region.is_in(list(_EEA_ONLY)))
        .then(pl.lit("EEA_NON_EU"))
        .otherwise(pl.lit("OTHER"))
    )


def score_band(score: pl.Expr) -> pl.Expr:
    """The score band label; a null score falls in the lowest band (it was never actioned)."""
    expr: pl.Expr = pl.lit(BANDS[-1])
    for edge, band in reversed(list(zip(BAND_EDGES, BANDS, strict=False))):
        expr = pl.when(score < edge).then(pl.lit(band)).otherwise(expr)
    return pl.when(score.is_null()).then(pl.lit(BANDS[0])).otherwise(expr)


def stratum(policy: pl.Expr, group: pl.Expr, band: pl.Expr, changed: pl.Expr) -> pl.Expr:
    """The stratum name ``policy|group|band|changed`` (``changed`` is ``changed``/``stable``)."""
    flag = pl.when(changed).then(pl.lit("changed")).otherwise(pl.lit("stable"))
    return pl.concat_str([policy, group, band, flag], separator="|")


def is_high(band: str) -> bool:
    return float(band.split("-")[0]) >= HIGH_FROM
