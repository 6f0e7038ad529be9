"""Load an internal-complaints file (DSA Art. 20) into ``complaints`` and write its decisions of record.

File: CSV (header row) or Parquet with the columns of :data:`COLUMNS`; ``outcome``,
``resolved_at`` and ``new_action`` may be empty (a pending complaint). Every problem is
reported with its line number (CSV: the physical line, header = line 1; Parquet: row + 1, so
the first data row is line 2 there too) in ONE line, and nothing is written unless the whole
file is valid.

Exactly once per file content: both commits (``complaints`` and ``decisions``) carry the
application transaction ``complaints/<sha256 of the file>``; a re-run after a crash between
the two commits adds only what is missing.

Decisions of record (source ``appeal``, ``automated = NOT_AUTOMATED``), one per resolved
complaint, for the complaint's (content_id, market, policy_id):

- ``upheld``: the complained-of restriction, now confirmed by a person (a later sweep cannot
  undo it); a decision not to restrict (none, review) is confirmed as ``none``;
- ``reversed`` against a restriction (label, demote, age_restrict, remove): ``none`` (lifted);
- ``reversed`` against a decision not to restrict (none, review): ``new_action`` when given,
  else the most severe restrictive tier of the policy in the pack version that decided;
- ``partially_reversed``: ``new_action`` (required);
- ``omitted`` and pending complaints: no decision.

Lineage of an appeal row: ``run_id`` = ``complaint:<complaint_id>``, ``model_name`` =
``complaints``, ``model_version`` = the first 16 hex digits of the file's SHA-256,
``source_version`` = the decisions table version the complaint was checked against,
``decided_at`` = ``resolved_at``. Score, threshold and item metadata come from the
complained-of decision.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.complaints.current import current_decisions
from pipelines.errors import BadInputError
from pipelines.lake import Lake, table_exists
from pipelines.policy.model import RESTRICTIVE_ACTIONS
from pipelines.schema import ACTIONS, COMPLAINT_BASES, COMPLAINT_OUTCOMES, DECISIONS
from pipelines.sink import commit_once

COLUMNS: tuple[str, ...] = ("complaint_id", "content_id", "market", "policy_id", "lodged_at", "basis", "outcome",
                            "resolved_at")  # fmt: skip
OPTIONAL: tuple[str, ...] = ("new_action",)
MAX_REPORTED = 20
_SKEW = timedelta(minutes=5)  # clock skew tolerated between the complaints system and this host
_SEVERITY = {"label": 1, "demote": 2, "age_restrict": 3, "remove": 4}


@dataclass(frozen=True)
class ComplaintsSummary:
    """What an ingest did."""

    complaints: int
    decisions: int
    source: str
    committed: bool

    def line(self) -> str:
        verb = "loaded" if self.committed else "found already loaded"
        return (
            f"complaints ingest: {verb} {self.complaints} complaints from {self.source}; "
            f"{self.decisions} decisions of record (source appeal)"
        )


def _parse_time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _records(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(column names, [(line number, {column: text})]) of a CSV or Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:
            raise BadInputError(f"{path}: not a readable Parquet file ({exc.__class__.__name__})") from None
        text = frame.with_columns(
            pl.col(c).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            if isinstance(frame.schema[c], pl.Datetime) and frame.schema[c].time_zone  # type: ignore[attr-defined]
            else pl.col(c).cast(pl.String)
            for c in frame.columns
        )
        return frame.columns, [
            (i + 2, {k: v or "" for k, v in r.items()}) for i, r in enumerate(text.iter_rows(named=True))
        ]
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        names = list(reader.fieldnames or [])
        rows = [(reader.line_num, {k: (v or "") for k, v in r.items() if k is not None}) for r in reader]
    return names, rows


@dataclass(frozen=True)
class _Row:
    line: int
    complaint_id: str
    content_id: str
    market: str
    policy_id: str
    lodged_at: datetime
    basis: str
    outcome: str | None
    resolved_at: datetime | None
    new_action: str | None


def _parse(path: Path, now: datetime) -> list[_Row]:
    names, records = _records(path)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise BadInputError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)}[, new_action]); "
            "nothing was imported"
        )
    problems: list[str] = []
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for line, r in records:
        v = {k: r.get(k, "").strip() for k in (*COLUMNS, *OPTIONAL)}
        bad = [f"empty {c}" for c in ("complaint_id", "content_id", "market", "policy_id", "lodged_at", "basis")
               if not v[c]]  # fmt: skip
        if bad:
            problems.append(f"line {line}: {', '.join(bad)}")
            continue
        if v["complaint_id"] in seen:
            problems.append(f"line {line}: complaint_id {v['complaint_id']!r} repeats line {seen[v['complaint_id']]}")
            continue
        seen[v["complaint_id"]] = line
        if v["basis"] not in COMPLAINT_BASES:
            problems.append(f"line {line}: unknown basis {v['basis']!r} (one of {', '.join(COMPLAINT_BASES)})")
        outcome = v["outcome"] or None
        if outcome is not None and outcome not in COMPLAINT_OUTCOMES:
            problems.append(
                f"line {line}: unknown outcome {outcome!r} (one of {', '.join(COMPLAINT_OUTCOMES)}, or empty while pending)"
            )
        new_action = v["new_action"] or None
        if new_action is not None and new_action not in ACTIONS:
            problems.append(f"line {line}: unknown new_action {new_action!r} (one of {', '.join(ACTIONS)})")
        if outcome == "partially_reversed" and new_action is None:
            problems.append(f"line {line}: outcome partially_reversed needs new_action")
        try:
            lodged = _parse_time(v["lodged_at"])
        except ValueError:
            problems.append(f"line {line}: lodged_at {v['lodged_at']!r} is not an ISO 8601 time")
            continue
        resolved = None
        if v["resolved_at"]:
            try:
                resolved = _parse_time(v["resolved_at"])
            except ValueError:
                problems.append(f"line {line}: resolved_at {v['resolved_at']!r} is not an ISO 8601 time")
                continue
        if outcome is not None and resolved is None:
            problems.append(f"line {line}: outcome {outcome} without resolved_at")
        if outcome is None and resolved is not None:
            problems.append(f"line {line}: resolved_at without an outcome")
        for name, when in (("lodged_at", lodged), ("resolved_at", resolved)):
            if when is not None and when > now + _SKEW:
                problems.append(f"line {line}: {name} {v[name]} is in the future")
        if resolved is not None and resolved < lodged:
            problems.append(f"line {line}: resolved_at {v['resolved_at']} is before lodged_at {v['lodged_at']}")
        rows.append(
            _Row(
                line,
                v["complaint_id"],
                v["content_id"],
                v["market"],
                v["policy_id"],
                lodged,
                v["basis"],
                outcome,
                resolved,
                new_action,
            )
        )
    _raise(path, problems)
    if not rows:
        raise BadInputError(f"{path}: no complaints in the file; nothing was imported")
    return rows


def _raise(path: Path, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise BadInputError(f"{path}: " + "; ".join(problems[:MAX_REPORTED]) + more + "; nothing was imported")


def _complained_of(lake: Lake, rows: list[_Row]) -> tuple[pl.DataFrame, int]:
    """For each complaint line: the decision in force for its key just before lodged_at (nulls: none)."""
    from deltalake import DeltaTable

    uri = lake.path("decisions")
    if not table_exists(uri):
        raise BadInputError(f"no decisions table at {uri}: complaints concern decisions; run a backfill first")
    version = DeltaTable(uri).version()
    asked = pl.DataFrame(
        [(r.line, r.content_id, r.market, r.policy_id, r.lodged_at) for r in rows],
        schema={"__line": pl.Int64, "content_id": pl.String, "market": pl.String, "policy_id": pl.String,
                "lodged_at": pl.Datetime("us", "UTC")},
        orient="row",
    )  # fmt: skip
    ids = asked["content_id"].unique().implode()
    relevant = pl.scan_delta(uri, version=version).filter(pl.col("content_id").is_in(ids)).collect()
    known = set(relevant["content_id"].unique().to_list())
    # The decision in force at lodged_at for each complaint line (source precedence, then latest).
    pairs = asked.join(relevant, on=["content_id", "market", "policy_id"], how="inner").filter(
        pl.col("decided_at") < pl.col("lodged_at")
    )
    in_force = current_decisions(pairs.lazy(), key=["__line"]).collect().drop("lodged_at")
    out = asked.join(in_force.drop("content_id", "market", "policy_id"), on="__line", how="left")
    return out.with_columns(pl.col("content_id").is_in(list(known)).alias("__known")), version


def _existing(lake: Lake) -> dict[str, tuple[str | None, str, str, str]]:
    """complaint_id -> (outcome, content_id, market, policy_id) of its latest stored row."""
    uri = lake.path("complaints")
    if not table_exists(uri):
        return {}
    frame = (
        pl.read_delta(uri, columns=["complaint_id", "outcome", "content_id", "market", "policy_id", "ingested_at"])
        .sort("ingested_at")
        .unique("complaint_id", keep="last")
    )
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in frame.iter_rows()}


def _strongest_tier(lake: Lake, policy_version: str, policy_id: str, cache: dict[str, object]) -> str | None:
    """The most severe restrictive tier of ``policy_id`` in the pack version that decided."""
    from pipelines.audit.packs import load_packs
    from pipelines.audit.versions import Pinned
    from pipelines.policy import Pack

    if "packs" not in cache:
        from deltalake import DeltaTable

        uri = lake.path("policy_packs")
        version = DeltaTable(uri).version() if table_exists(uri) else None
        cache["packs"] = load_packs(Pinned("policy_packs", uri, version, None))
    packs: dict[str, tuple[Pack, str]] = cache["packs"]  # type: ignore[assignment]
    if policy_version not in packs or policy_id not in packs[policy_version][0].policy_ids:
        return None
    actions = [a for a in packs[policy_version][0].policy(policy_id).actions if a in RESTRICTIVE_ACTIONS]
    return max(actions, key=_SEVERITY.__getitem__) if actions else None


def record_action(outcome: str, previous: str, new_action: str | None, strongest: str | None) -> str | None:
    """The action of the decision of record for a resolved complaint (None: no decision).

    See the module docstring for the mapping; ``strongest`` is the policy's most severe
    restrictive tier (used when a reversal imposes a restriction and no ``new_action`` is given).
    """
    if outcome == "upheld":
        # A person upheld the decision: a restriction stands; a decision not to restrict (none, or a
        # review flag) is confirmed as no restriction.
        return previous if previous in RESTRICTIVE_ACTIONS else "none"
    if outcome == "partially_reversed":
        return new_action
    if outcome == "reversed":
        if previous in RESTRICTIVE_ACTIONS:
            return "none"
        return new_action or strongest
    return None


def ingest_complaints(lake: Lake, path: str, *, now: datetime | None = None) -> ComplaintsSummary:
    """Validate ``path`` (CSV or Parquet) and load it into ``complaints`` and ``decisions``, exactly once."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{path}: no such file")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    app_id = f"complaints/{digest}"
    stamp = now or datetime.now(UTC)
    rows = _parse(p, stamp)
    checked, version = _complained_of(lake, rows)
    existing = _existing(lake)
    by_line = {r["__line"]: r for r in checked.iter_rows(named=True)}
    problems: list[str] = []
    keep: list[_Row] = []
    decisions: list[dict[str, object]] = []
    cache: dict[str, object] = {}
    for r in rows:
        d = by_line[r.line]
        if not d["__known"]:
            problems.append(f"line {r.line}: unknown content_id {r.content_id!r} (no decision about it in the lake)")
            continue
        if d["action"] is None:
            problems.append(
                f"line {r.line}: no decision for ({r.content_id}, {r.market}, {r.policy_id}) before lodged_at "
                f"{r.lodged_at.isoformat()}; a complaint must concern an earlier decision"
            )
            continue
        if r.complaint_id in existing:
            outcome, *ids = existing[r.complaint_id]
            if tuple(ids) != (r.content_id, r.market, r.policy_id):
                problems.append(
                    f"line {r.line}: complaint_id {r.complaint_id!r} is already loaded for another decision"
                )
                continue
            if outcome is not None and outcome != r.outcome:
                problems.append(
                    f"line {r.line}: complaint {r.complaint_id!r} was already resolved as {outcome}; "
                    "a resolved complaint cannot change"
                )
                continue
            if outcome == r.outcome:
                continue  # already loaded as it is
        keep.append(r)
        if r.outcome is None or r.resolved_at is None:
            continue
        strongest = None
        if r.outcome == "reversed" and d["action"] not in RESTRICTIVE_ACTIONS and r.new_action is None:
            strongest = _strongest_tier(lake, d["policy_version"], r.policy_id, cache)
            if strongest is None:
                problems.append(
                    f"line {r.line}: reversed decision not to act, but policy {r.policy_id} has no restrictive tier "
                    f"in {d['policy_version']}; give new_action"
                )
                continue
        action = record_action(r.outcome, d["action"], r.new_action, strongest)
        if action is None:
            continue
        decisions.append(
            {
                **{k: d[k] for k in ("content_id", "market", "policy_id", "policy_version", "score", "threshold",
                                     "created_at", "region", "language", "content_type", "content_sha256",
                                     "chunk_id")},
                "action": action, "automated": "NOT_AUTOMATED", "source": "appeal",
                "run_id": f"complaint:{r.complaint_id}", "model_name": "complaints", "model_version": digest[:16],
                "source_version": version, "decided_at": r.resolved_at,
            }
        )  # fmt: skip
    _raise(p, problems)
    complaints = pl.DataFrame(
        [(r.complaint_id, r.content_id, r.market, r.policy_id, r.lodged_at, r.basis, r.outcome, r.resolved_at,
          r.new_action) for r in keep],
        schema={"complaint_id": pl.String, "content_id": pl.String, "market": pl.String, "policy_id": pl.String,
                "lodged_at": pl.Datetime("us", "UTC"), "basis": pl.String, "outcome": pl.String,
                "resolved_at": pl.Datetime("us", "UTC"), "new_action": pl.String},
        orient="row",
    ).with_columns(pl.lit(digest).alias("import_sha256"), pl.lit(stamp).dt.cast_time_unit("us").alias("ingested_at"))  # fmt: skip
    meta = {"job": "complaints-ingest", "source": p.name, "sha256": digest}
    committed = False
    if decisions:
        frame = pl.DataFrame(decisions, schema=pl.Schema(pl.DataFrame(DECISIONS.empty_table()).schema))
        committed |= commit_once(lake, "decisions", frame.to_arrow(), app_id=app_id, metadata=meta)
    if complaints.height:
        committed |= commit_once(lake, "complaints", complaints.to_arrow(), app_id=app_id, metadata=meta)
    return ComplaintsSummary(complaints=complaints.height, decisions=len(decisions), source=path, committed=committed)
