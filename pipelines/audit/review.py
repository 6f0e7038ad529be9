"""The labelled review units an audit estimates from: one sample draw and its labels.

Only one draw is used per audit, so stratum sizes and inclusion probabilities all belong to
one design: the latest draw that has labels at the pinned versions (a fresh draw waiting for
its reviewers does not blank the estimates of the previous one). A unit labelled twice keeps
its latest label.
"""

from __future__ import annotations

import polars as pl

from pipelines.audit.versions import Pinned

EMPTY = pl.DataFrame(schema={"content_id": pl.String, "policy_id": pl.String, "y": pl.Boolean})


def labelled_units(samples: Pinned, labels: Pinned) -> tuple[pl.DataFrame, str | None]:
    """(content_id, policy_id, y) for every labelled unit of the chosen draw, and that draw's id."""
    if samples.version is None:
        return EMPTY, None
    drawn = pl.scan_delta(samples.uri, version=samples.version).select(
        "sample_id", "content_id", "policy_id", "sample_run", "sampled_at"
    )
    runs = drawn.group_by("sample_run").agg(pl.col("sampled_at").max()).sort("sampled_at", "sample_run").collect()
    if labels.version is None:
        return EMPTY, (str(runs["sample_run"][-1]) if runs.height else None)
    latest = (
        pl.scan_delta(labels.uri, version=labels.version)
        .sort("labeled_at")
        .group_by("sample_id")
        .agg(pl.col("label").last().alias("y"))
    )
    joined = drawn.join(latest, on="sample_id", how="inner").collect()
    if joined.height == 0:
        return EMPTY, (str(runs["sample_run"][-1]) if runs.height else None)
    labelled_runs = runs.filter(pl.col("sample_run").is_in(joined["sample_run"].unique().implode()))
    run = str(labelled_runs["sample_run"][-1])
    units = joined.filter(pl.col("sample_run") == run).select("content_id", "policy_id", "y")
    return units, run
