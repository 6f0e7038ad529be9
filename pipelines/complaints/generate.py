"""A realistic internal-complaints file for a lake (demos and tests).

A share of the decisions in force that restrict an item (label, demote, age_restrict,
remove) is appealed by the uploader (basis ``visibility``); a smaller share of decisions not
to restrict is contested by a notifier (basis ``notice_no_action``, one in ten from a trusted
flagger). Where the lake has ``ground_truth`` (generated data), the outcome depends on it: a
restriction of content that does not violate (a false positive) is usually reversed, one of
violating content usually upheld, and the other way round for decisions not to act. A few
complaints are omitted (withdrawn) or still pending.

Times: a complaint is lodged after its decision and resolved after it is lodged, both no
later than ``now``, spread uniformly over what is left of that span, so a lake decided
months ago gets complaints over months and a fresh test lake over seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.complaints.current import current_decisions
from pipelines.errors import BadConfigError, BadInputError
from pipelines.lake import Lake, table_exists
from pipelines.policy.model import RESTRICTIVE_ACTIONS

OUTCOMES = ("upheld", "partially_reversed", "reversed", "omitted", None)
# P(outcome) for a complaint whose complained-of decision was wrong / right per ground truth.
WRONG = (0.20, 0.10, 0.60, 0.05, 0.05)
RIGHT = (0.80, 0.05, 0.05, 0.05, 0.05)
UNKNOWN = (0.50, 0.075, 0.325, 0.05, 0.05)
_READ = ("content_id", "market", "policy_id", "action", "decided_at", "source", "policy_version", "model_version",
         "run_id")  # fmt: skip
_LESSER = {"remove": "demote", "age_restrict": "label", "demote": "label", "label": "none"}


@dataclass(frozen=True)
class GeneratedComplaints:
    path: str
    complaints: int
    pending: int

    def line(self) -> str:
        return f"complaints generate: {self.complaints} complaints ({self.pending} pending) -> {self.path}"


def generate_complaints(
    lake: Lake,
    out: str,
    *,
    appeal_share: float = 0.1,
    notice_share: float = 0.01,
    seed: int = 0,
    now: datetime | None = None,
) -> GeneratedComplaints:
    """Write a complaints file (CSV, or Parquet when ``out`` ends in .parquet) for ``lake``."""
    for name, value in (("appeal_share", appeal_share), ("notice_share", notice_share)):
        if not 0.0 <= value <= 1.0:
            raise BadConfigError(f"{name} must be in [0, 1], got {value}")
    uri = lake.path("decisions")
    if not table_exists(uri):
        raise BadInputError(f"no decisions table at {uri}: run a backfill before generating complaints")
    stamp = now or datetime.now(UTC)
    current = (
        current_decisions(pl.scan_delta(uri).select(_READ), before=stamp)
        .select("content_id", "market", "policy_id", "action", "decided_at")
        .sort("content_id", "market", "policy_id")
        .collect()
    )
    gt_uri = lake.path("ground_truth")
    if table_exists(gt_uri):
        truth = pl.read_delta(gt_uri, columns=["content_id", "policy_id", "label"]).unique(["content_id", "policy_id"])
        current = current.join(truth, on=["content_id", "policy_id"], how="left")
    else:
        current = current.with_columns(pl.lit(None, dtype=pl.Boolean).alias("label"))
    rng = np.random.default_rng(seed)
    restrictive = current["action"].is_in(list(RESTRICTIVE_ACTIONS)).to_numpy()
    u = rng.random(current.height)
    picked = current.filter(pl.Series((restrictive & (u < appeal_share)) | (~restrictive & (u < notice_share))))
    rows = []
    for i, r in enumerate(picked.iter_rows(named=True)):
        restricts = r["action"] in RESTRICTIVE_ACTIONS
        probs = UNKNOWN if r["label"] is None else WRONG if bool(r["label"]) != restricts else RIGHT
        outcome = OUTCOMES[int(rng.choice(len(OUTCOMES), p=probs))]
        new_action = None
        if outcome == "partially_reversed":
            new_action = _LESSER.get(r["action"], "label") if restricts else "label"
            if new_action == "none":
                outcome = "reversed"
                new_action = None
        basis = (
            "visibility" if restricts else ("trusted_flagger_no_action" if rng.random() < 0.1 else "notice_no_action")
        )
        decided: datetime = r["decided_at"]
        span = max((stamp - decided).total_seconds(), 0.0)
        lodged = decided + (stamp - decided) * float(rng.uniform(0.05, 0.5)) if span else decided
        resolved = lodged + (stamp - lodged) * float(rng.uniform(0.1, 0.95)) if outcome else None
        rows.append(
            (
                f"cmp-{seed}-{i:07d}",
                r["content_id"],
                r["market"],
                r["policy_id"],
                lodged,
                basis,
                outcome,
                resolved,
                new_action,
            )
        )
    frame = pl.DataFrame(
        rows,
        schema={"complaint_id": pl.String, "content_id": pl.String, "market": pl.String, "policy_id": pl.String,
                "lodged_at": pl.Datetime("us", "UTC"), "basis": pl.String, "outcome": pl.String,
                "resolved_at": pl.Datetime("us", "UTC"), "new_action": pl.String},
        orient="row",
    )  # fmt: skip
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(path)
    else:
        iso = "%Y-%m-%dT%H:%M:%S%.6fZ"
        frame.with_columns(pl.col("lodged_at", "resolved_at").dt.strftime(iso)).write_csv(path)
    return GeneratedComplaints(path=str(path), complaints=frame.height, pending=int(frame["outcome"].null_count()))
