"""Headline complaint figures per market × policy for the audit report (DSA Art. 20 complaints).

From the ``complaints`` table pinned with the other tables: each complaint as its latest row
(a complaint is re-ingested when it is resolved), lodged inside the audit period, in the
reported markets and policies. An outcome resolved after the period's end counts as pending,
as in the transparency report (:mod:`pipelines.transparency.figures`). Per market × policy:

- ``complaints``: lodged in the period; ``pending``: no outcome by the period's end;
- ``upheld``, ``reversed``, ``partially_reversed``, ``omitted``: by outcome;
  ``reversals`` = reversed + partially reversed;
- ``median_hours_to_resolve``: lodging to outcome, over resolved complaints (omitted excluded,
  as Annex II asks for the median time of decisions).

Complaint rows carry content ids; only counts and medians leave this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from pipelines.audit.versions import Pinned
from pipelines.schema import COMPLAINTS

OUTCOMES: tuple[str, ...] = ("upheld", "reversed", "partially_reversed", "omitted")
COLUMNS: tuple[str, ...] = (
    "market", "policy_id", "complaints", "pending", *OUTCOMES, "reversals", "median_hours_to_resolve",
)  # fmt: skip


def empty() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {"market": pl.String(), "policy_id": pl.String()}
    schema.update({c: pl.Int64() for c in COLUMNS[2:-1]})
    schema["median_hours_to_resolve"] = pl.Float64()
    return pl.DataFrame(schema=schema)


def complaint_figures(
    pinned: Pinned,
    *,
    start: datetime | None,
    end: datetime,
    markets: Sequence[str] = (),
    policies: Sequence[str] = (),
) -> pl.DataFrame:
    """Per market × policy: complaints lodged in [start, end) and their outcomes as of ``end``."""
    if pinned.version is None:
        return empty()
    schema = pl.Schema(COMPLAINTS)
    # Imported here: pipelines.transparency imports the audit package (estimators), so a
    # module-level import would be circular.
    from pipelines.transparency.figures import scan

    frame = scan(pinned, dict(schema)).select(list(schema)).sort("ingested_at")
    frame = frame.unique("complaint_id", keep="last", maintain_order=True).filter(pl.col("lodged_at") < end)
    if start is not None:
        frame = frame.filter(pl.col("lodged_at") >= start)
    if markets:
        frame = frame.filter(pl.col("market").is_in(list(markets)))
    if policies:
        frame = frame.filter(pl.col("policy_id").is_in(list(policies)))
    late = pl.col("resolved_at").is_null() | (pl.col("resolved_at") >= end)
    outcome = pl.when(late).then(None).otherwise(pl.col("outcome"))
    hours = (pl.col("resolved_at") - pl.col("lodged_at")).dt.total_seconds(fractional=True) / 3600.0
    resolved = outcome.is_not_null() & (outcome != "omitted")
    out = (
        frame.group_by("market", "policy_id")
        .agg(
            pl.len().cast(pl.Int64).alias("complaints"),
            outcome.is_null().sum().cast(pl.Int64).alias("pending"),
            *((outcome == o).sum().cast(pl.Int64).alias(o) for o in OUTCOMES),
            hours.filter(resolved).median().alias("median_hours_to_resolve"),
        )
        .with_columns((pl.col("reversed") + pl.col("partially_reversed")).alias("reversals"))
        .select(COLUMNS)
        .sort("market", "policy_id")
        .collect()
    )
    return out.cast(dict(empty().schema))  # type: ignore[arg-type]
