"""Human review labels: load a reviewers' CSV, or fill from ground truth (generated data only).

A labels CSV has a header with ``sample_id`` and ``label``; ``content_id``, ``policy_id`` and
``reviewer`` are optional (when given, ids must match the sample). Labels read ``violating``
/ ``not_violating`` (also true/false, yes/no, 1/0). Every bad line is reported with its line
number, and nothing is written unless the whole file is valid.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines.errors import BadInputError
from pipelines.lake import Lake, table_exists
from pipelines.sink import commit_once

TRUE_LABELS = frozenset({"violating", "true", "yes", "1", "y"})
FALSE_LABELS = frozenset({"not_violating", "false", "no", "0", "n"})
MAX_REPORTED = 20


@dataclass(frozen=True)
class IngestSummary:
    labels: int
    source: str
    committed: bool

    def line(self) -> str:
        verb = "loaded" if self.committed else "found already loaded"
        return f"review ingest: {verb} {self.labels} labels from {self.source}"


def _samples(lake: Lake) -> pl.DataFrame:
    uri = lake.path("review_samples")
    if not table_exists(uri):
        raise BadInputError(f"no review samples at {uri}: run `batchjobs review sample` first")
    return pl.read_delta(uri, columns=["sample_id", "content_id", "policy_id"])


def _labels_frame(rows: list[tuple[str, str, str, bool, str]], labeled_at: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"sample_id": pl.String, "content_id": pl.String, "policy_id": pl.String, "label": pl.Boolean,
                "reviewer": pl.String},
        orient="row",
    ).with_columns(pl.lit(labeled_at).dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("labeled_at"))  # fmt: skip


def read_labels_csv(path: str, samples: pl.DataFrame) -> list[tuple[str, str, str, bool, str]]:
    """Validate a labels CSV against the samples; raise BadInputError listing bad lines."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{path}: no such file")
    known = {r[0]: (r[1], r[2]) for r in samples.iter_rows()}
    problems: list[str] = []
    rows: list[tuple[str, str, str, bool, str]] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        missing = [c for c in ("sample_id", "label") if c not in fields]
        if missing:
            raise BadInputError(f"{path}: line 1: header lacks column(s) {', '.join(missing)} (need sample_id, label)")
        seen: dict[str, int] = {}
        for record in reader:
            line = reader.line_num
            sid = (record.get("sample_id") or "").strip()
            raw = (record.get("label") or "").strip().lower()
            if sid not in known:
                problems.append(f"line {line}: unknown sample_id {sid!r}")
                continue
            if sid in seen:
                problems.append(f"line {line}: sample_id {sid!r} repeats line {seen[sid]}")
                continue
            seen[sid] = line
            content_id, policy_id = known[sid]
            for col, want in (("content_id", content_id), ("policy_id", policy_id)):
                got = (record.get(col) or "").strip()
                if got and got != want:
                    problems.append(f"line {line}: {col} {got!r} does not match sample {sid!r} ({want!r})")
            if raw in TRUE_LABELS:
                label = True
            elif raw in FALSE_LABELS:
                label = False
            else:
                problems.append(f"line {line}: unknown label {raw!r} (use violating or not_violating)")
                continue
            reviewer = (record.get("reviewer") or "").strip() or "unknown"
            rows.append((sid, content_id, policy_id, label, reviewer))
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise BadInputError(f"{path}: " + "; ".join(problems[:MAX_REPORTED]) + more + "; nothing was loaded")
    if not rows:
        raise BadInputError(f"{path}: no labels in the file; nothing was loaded")
    return rows


def ingest_labels_csv(lake: Lake, path: str, *, now: datetime | None = None) -> IngestSummary:
    """Load a reviewers' CSV into ``review_labels`` (exactly once per file content)."""
    rows = read_labels_csv(path, _samples(lake))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]
    frame = _labels_frame(rows, now or datetime.now(UTC))
    committed = commit_once(
        lake, "review_labels", frame.to_arrow(), app_id=f"review-labels/csv/{digest}",
        metadata={"job": "review-ingest", "source": Path(path).name, "sha256_24": digest},
    )  # fmt: skip
    return IngestSummary(labels=frame.height, source=path, committed=committed)


def ingest_labels_from_ground_truth(lake: Lake, *, now: datetime | None = None) -> IngestSummary:
    """Label every sampled unit from ``ground_truth`` (generated data only; reviewer ``ground_truth``)."""
    uri = lake.path("ground_truth")
    if not table_exists(uri):
        raise BadInputError(f"no ground_truth table at {uri}: --from-ground-truth only works on generated data")
    samples = _samples(lake)
    truth = pl.read_delta(uri, columns=["content_id", "policy_id", "label"]).unique(["content_id", "policy_id"])
    joined = samples.join(truth, on=["content_id", "policy_id"], how="inner")
    if joined.height == 0:
        raise BadInputError("ground_truth has no label for any sampled unit; nothing was loaded")
    rows = [(s, c, p, bool(y), "ground_truth") for s, c, p, y in joined.select(
        "sample_id", "content_id", "policy_id", "label").sort("sample_id").iter_rows()]  # fmt: skip
    frame = _labels_frame(rows, now or datetime.now(UTC))
    digest = hashlib.sha256("\n".join(sorted(samples["sample_id"].to_list())).encode()).hexdigest()[:24]
    committed = commit_once(
        lake, "review_labels", frame.to_arrow(), app_id=f"review-labels/ground-truth/{digest}",
        metadata={"job": "review-ingest", "source": "ground_truth"},
    )  # fmt: skip
    return IngestSummary(labels=frame.height, source="ground_truth", committed=committed)
