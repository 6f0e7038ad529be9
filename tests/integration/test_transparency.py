"""DSA transparency report on a real backfilled lake (tiny model, shared Ray), through the CLI:
complaints generated and ingested, review labels recorded as decisions, every part keeps its
template, and the filled cells reconcile with direct queries of the lake for the same period."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import polars as pl
import pytest

from pipelines import markets as mk
from pipelines.audit import SampleConfig, sample_for_review
from pipelines.lake import Lake
from pipelines.policy import load_default_pack
from pipelines.transparency import PARTS, load_template
from tests.integration.helpers import TINY_URI, make_lake, read, run_ok
from tests.unit.test_transparency_report import _collapse

RANK = {"model": 0, "hash_match": 1, "human_review": 2, "appeal": 3}
RESTRICTIVE = {"label", "demote", "age_restrict", "remove"}
OWN = "Number of measures taken at the provider's own initiative "
SOLELY = "Number of measures taken after detection with solely automated means "


@pytest.fixture(scope="module")
def built(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path, str]:
    from pipelines.backfill import BackfillConfig, run_backfill

    root = tmp_path_factory.mktemp("transparency")
    lake = make_lake(root / "lake", rows=800, enrich=20.0)
    run_backfill(BackfillConfig(lake=lake, model_uri=TINY_URI, chunk_rows=400), ray_address=ray_cluster)
    sample_for_review(SampleConfig(lake=lake, per_stratum=6, seed=5))
    run_ok("review", "ingest", "--lake", lake.root, "--from-ground-truth", "--as-decisions")
    complaints = root / "complaints.csv"
    run_ok("complaints", "generate", "--lake", lake.root, "--out", str(complaints), "--share", "0.3", "--seed", "2")
    out = run_ok("complaints", "ingest", "--lake", lake.root, str(complaints))
    assert "decisions of record" in out
    # Ingesting the same file again adds nothing.
    assert "found already loaded" in run_ok("complaints", "ingest", "--lake", lake.root, str(complaints))
    today = datetime.now(UTC).date()
    period = f"{today - timedelta(days=1)}/{today + timedelta(days=1)}"
    report = root / "report"
    run_ok(
        "transparency-report", "--lake", lake.root, "--period", period, "--service", "Example",
        "--provider", "Example BV", "--published", str(today), "--vlop", "--out", str(report),
    )  # fmt: skip
    return lake, report, period


def _cells(out: Path, stem: str) -> list[dict[str, str]]:
    with (out / f"{stem}.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _walk(decisions: pl.DataFrame, start: datetime, end: datetime) -> list[dict[str, object]]:
    """The counting unit, replayed row by row in plain Python (independent of the polars implementation)."""
    rows = decisions.filter(pl.col("market").is_in(list(mk.EEA)) & (pl.col("decided_at") < end)).sort(
        "decided_at", "policy_version", "model_version", "run_id"
    )
    by_unit: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for r in rows.iter_rows(named=True):
        by_unit[(r["content_id"], r["policy_id"])].append(r)
    found = []
    for (content_id, policy_id), history in by_unit.items():
        state: dict[str, tuple[int, str]] = {}
        times = sorted({r["decided_at"] for r in history})
        for t in times:
            before = any(a in RESTRICTIVE for _, a in state.values())
            now_rows = [r for r in history if r["decided_at"] == t]
            applied = []
            for r in now_rows:
                rank = RANK[r["source"]]
                if r["market"] not in state or rank >= state[r["market"]][0]:
                    state[r["market"]] = (rank, r["action"])
                    applied.append(r)
            after = any(a in RESTRICTIVE for _, a in state.values())
            if not before and after and t >= start:
                restricting = [r for r in applied if r["action"] in RESTRICTIVE]
                found.append(
                    {
                        "content_id": content_id, "policy_id": policy_id,
                        "solely": all(r["source"] in ("model", "hash_match") and r["automated"] == "FULLY"
                                      for r in restricting),
                        "appeal": any(r["source"] == "appeal" for r in restricting),
                        "language": restricting[0]["language"],
                    }
                )  # fmt: skip
    return found


def test_every_csv_keeps_its_template(built: tuple[Lake, Path, str]) -> None:
    _, out, period = built
    for stem in PARTS:
        with (out / f"{stem}.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert tuple(rows[0]) == load_template(stem).header, stem
        _collapse([list(r) for r in load_template(stem).rows], rows[1:], stem)
        if "Reporting period" in rows[0]:
            assert {r[rows[0].index("Reporting period")] for r in rows[1:]} == {period}


def test_cells_reconcile_with_direct_queries(built: tuple[Lake, Path, str]) -> None:
    lake, out, period = built
    first, last = period.split("/")
    start = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
    found = _walk(read(lake, "decisions"), start, end)
    own = [m for m in found if not m["appeal"]]
    assert own, "the lake should have own-initiative measures"
    # The lake exercises every path: automated and reviewed measures, restrictions imposed on appeal.
    assert 0 < sum(bool(m["solely"]) for m in own) < len(own) and any(m["appeal"] for m in found)
    pack = load_default_pack()
    part_of = {p.id: 5 if p.decision_ground == "DECISION_GROUND_ILLEGAL_CONTENT" else 6 for p in pack.policies}
    category = {p.id: p.category for p in pack.policies}
    for part, stem, col in (
        (5, "Part_5_own_initiative_illegal", "Category of illegal content"),
        (6, "Part_6_own_initiative_TC", "Category of incompatibility with the provider's terms and conditions"),
    ):
        mine = [m for m in own if part_of[str(m["policy_id"])] == part]
        rows = _cells(out, stem)
        assert int(rows[0][OWN]) == len(mine), stem
        assert int(rows[0][SOLELY]) == sum(bool(m["solely"]) for m in mine), stem
        for row in rows:
            if row[col].startswith("STATEMENT_CATEGORY_"):
                expected = sum(category[str(m["policy_id"])] == row[col] for m in mine)
                assert int(row[OWN]) == expected, (stem, row[col])
    p8 = {(r["Indicator"].strip(), r["Scope"].strip()): r for r in _cells(out, "Part_8_automated_means")}
    assert int(p8[("Number of measures solely taken by automated means", "Own-initiative")]["Value"]) == sum(
        bool(m["solely"]) for m in own
    )
    assert int(p8[("Number of measures not taken by automated means", "Total number")]["Value"]) == sum(
        not m["solely"] for m in found
    )
    precision = p8[("Accuracy of the automated means - Precision", "Total number")]
    assert precision["Value"] == "" or 0.0 <= float(precision["Value"]) <= 1.0
    assert "model:tiny" in precision["Contextual Information"]

    complaints = (
        read(lake, "complaints")
        .sort("ingested_at")
        .unique("complaint_id", keep="last")
        .filter((pl.col("lodged_at") >= start) & (pl.col("lodged_at") < end) & pl.col("market").is_in(list(mk.EEA)))
    )
    assert complaints.height > 0
    assert complaints["outcome"].n_unique() == 5  # four outcomes and pending
    p7 = {(r["Indicator"], r["Scope"]): r["Value"] for r in _cells(out, "Part_7_appeals_and_recidivism")}
    total = "Number of complaints submitted to the internal-complaints mechanism"
    assert int(p7[(total, "Total number")]) == complaints.height
    for scope, outcome in (("Decisions upheld", "upheld"), ("Decisions partially reversed", "partially_reversed"),
                           ("Decisions reversed", "reversed"), ("Decision omitted", "omitted")):  # fmt: skip
        assert int(p7[(total, scope)]) == complaints.filter(pl.col("outcome") == outcome).height, scope
    done = complaints.filter(pl.col("outcome").is_not_null() & (pl.col("outcome") != "omitted"))
    hours = [(r - lo).total_seconds() / 3600 for lo, r in zip(done["lodged_at"], done["resolved_at"], strict=True)]
    assert float(p7[(total, "Median time")]) == pytest.approx(median(hours), abs=1e-6)
    imposed = "Number of restrictions newly imposed as a result of an internal complaint"
    assert int(p7[(imposed, "Total number")]) == sum(bool(m["appeal"]) for m in found)
