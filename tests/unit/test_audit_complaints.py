"""The audit report's complaint figures per market × policy reconcile with the complaints table,
and the HTML shows them beside the automated / not automated split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.audit import AuditConfig
from pipelines.audit.html import render
from pipelines.audit.run import compute
from pipelines.lake import Lake
from pipelines.schema import COMPLAINTS
from pipelines.sink import commit_once
from tests.unit.test_sweep_record import _lake

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def _complaints(lake: Lake) -> pl.DataFrame:
    rows = []
    # (id, market, policy, outcome, hours to resolve or None)
    spec = [
        ("k1", "DE", "hate", "reversed", 10.0),
        ("k2", "DE", "hate", "upheld", 30.0),
        ("k3", "DE", "hate", "partially_reversed", 50.0),
        ("k4", "DE", "hate", None, None),  # pending
        ("k5", "FR", "violence", "omitted", 1.0),
        ("k6", "FR", "violence", "reversed", 4.0),
    ]
    for cid, market, policy, outcome, hours in spec:
        rows.append(
            {
                "complaint_id": cid, "content_id": "c00001", "market": market, "policy_id": policy,
                "lodged_at": T0, "basis": "visibility", "outcome": outcome,
                "resolved_at": None if hours is None else T0 + timedelta(hours=hours), "new_action": None,
                "import_sha256": "x", "ingested_at": T0 + timedelta(days=3),
            }
        )  # fmt: skip
    # An older row of k1, superseded by the resolved one above.
    rows.append({**rows[0], "outcome": None, "resolved_at": None, "ingested_at": T0})
    frame = pl.DataFrame(rows, schema=pl.Schema(COMPLAINTS))
    commit_once(lake, "complaints", frame.to_arrow(), app_id="test/complaints")
    return frame


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, object]:
    lake = _lake(tmp_path_factory.mktemp("complaints") / "lake")
    _complaints(lake)
    return lake, compute(AuditConfig(lake=lake, use_ray=False))


def test_figures_per_market_and_policy(computed: tuple[Lake, object]) -> None:
    _, c = computed
    got = c.complaints  # type: ignore[attr-defined]
    de = got.filter((pl.col("market") == "DE") & (pl.col("policy_id") == "hate")).row(0, named=True)
    assert (de["complaints"], de["pending"], de["reversed"], de["partially_reversed"], de["upheld"]) == (4, 1, 1, 1, 1)
    assert de["reversals"] == 2
    assert de["median_hours_to_resolve"] == pytest.approx(30.0)
    fr = got.filter(pl.col("market") == "FR").row(0, named=True)
    assert (fr["complaints"], fr["omitted"], fr["reversals"]) == (2, 1, 1)
    assert fr["median_hours_to_resolve"] == pytest.approx(4.0)  # omitted excluded


def test_period_end_turns_later_outcomes_into_pending(computed: tuple[Lake, object]) -> None:
    lake, _ = computed
    c = compute(AuditConfig(lake=lake, end=T0 + timedelta(hours=20), use_ray=False))
    de = c.complaints.filter(pl.col("market") == "DE").row(0, named=True)
    assert (de["complaints"], de["reversed"], de["pending"]) == (4, 1, 3)


def test_html_shows_complaints_beside_automation(computed: tuple[Lake, object], tmp_path: Path) -> None:
    _, c = computed
    html = render(c, statements=0)  # type: ignore[arg-type]
    assert "Complaints and automation per market × policy" in html
    assert "solely automated" in html and "median hours to resolve" in html
    rows = c.rows.filter((pl.col("region") == "DE") & (pl.col("policy_id") == "hate"))  # type: ignore[attr-defined]
    assert rows.height == 1
    section = html[html.index("Complaints and automation") :]
    assert ">30.000<" in section and "c00001" not in html
