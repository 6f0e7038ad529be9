"""The labelled review units an audit estimates from: the latest sample draw and its labels.

Only one draw is used per audit (the latest committed at the pinned version), so stratum
sizes and inclusion probabilities all belong to one design. A unit labelled twice keeps its
latest label.
"""

from __future__ import annotations

import polars as pl

from pipelines.audit.versions import Pinned

EMPTY = pl.DataFrame(schema={"content_id": pl.String, "policy_id": pl.String, "y": pl.Boolean})


def latest_sample_run(samples: Pinned) -> str | None:
    if samples.version is None:
        return None
    runs = (
        pl.scan_delta(samples.uri, version=samples.version)
        .group_by("sample_run")
        .agg(pl.col("sampled_at").max())
        .sort("sampled_at", "sample_run")
        .collect()
    )
    return str(runs["sample_run"][-1]) if runs.height else None


def labelled_units(samples: Pinned, labels: Pinned) -> tuple[pl.DataFrame, str | None]:
    """(content_id, policy_id, y) for every labelled unit of the latest draw, and that draw's id."""
    run = latest_sample_run(samples)
    if run is None or labels.version is None:
        return EMPTY, run
    drawn = (
        pl.scan_delta(samples.uri, version=samples.version)
        .filter(pl.col("sample_run") == run)
        .select("sample_id", "content_id", "policy_id")
    )
    latest = (
        pl.scan_delta(labels.uri, version=labels.version)
        .sort("labeled_at")
        .group_by("sample_id")
        .agg(pl.col("label").last().alias("y"))
    )
    units = drawn.join(latest, on="sample_id", how="inner").select("content_id", "policy_id", "y").collect()
    return units, run
