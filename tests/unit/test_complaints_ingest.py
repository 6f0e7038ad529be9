"""Complaints ingest: every malformed-file kind fails in one line with its line number and imports
nothing; outcomes write decisions of record; the same file loads once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.complaints import current_decisions, ingest_complaints, record_action
from pipelines.errors import BadInputError
from pipelines.lake import Lake, open_lake, table_exists
from pipelines.policy import load_default_pack, record_pack
from pipelines.schema import DECISIONS
from pipelines.sink import commit_once

T0 = datetime(2026, 2, 1, tzinfo=UTC)
HEADER = "complaint_id,content_id,market,policy_id,lodged_at,basis,outcome,resolved_at,new_action\n"


def decision(
    content_id: str, market: str, policy_id: str, action: str, at: datetime, **over: object
) -> dict[str, object]:
    """One decisions row (model source by default) for a synthetic lake."""
    row: dict[str, object] = {
        "content_id": content_id, "market": market, "policy_id": policy_id,
        "policy_version": load_default_pack().policy_version, "action": action, "score": 0.95 if action != "none" else 0.1,
        "threshold": None, "automated": "FULLY", "source": "model", "run_id": "run-1", "model_name": "tiny",
        "model_version": "1", "source_version": 0, "decided_at": at, "created_at": at - timedelta(hours=2),
        "region": market, "language": "de", "content_type": "TEXT", "content_sha256": None, "chunk_id": 0,
    }  # fmt: skip
    row.update(over)
    return row


def commit_decisions(lake: Lake, rows: list[dict[str, object]], app: str) -> None:
    schema = pl.DataFrame(DECISIONS.empty_table()).schema
    commit_once(lake, "decisions", pl.DataFrame(rows, schema=schema).to_arrow(), app_id=app)


def synthetic_lake(root: Path) -> Lake:
    """A lake with the default pack recorded and a few model decisions on 2026-02-01."""
    lake = open_lake(str(root))
    record_pack(lake, load_default_pack(), run_id="run-1", now=T0)
    commit_decisions(
        lake,
        [
            decision("a", "DE", "hate", "remove", T0),
            decision("a", "FR", "hate", "demote", T0),
            decision("b", "DE", "hate", "none", T0),
            decision("c", "FR", "scams", "label", T0),
        ],
        "seed",
    )
    return lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return synthetic_lake(tmp_path / "lake")


def write(tmp_path: Path, body: str, name: str = "c.csv") -> str:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return str(p)


def _nothing_imported(lake: Lake) -> None:
    assert not table_exists(lake.path("complaints"))
    assert pl.read_delta(lake.path("decisions"))["source"].to_list().count("appeal") == 0


BAD = [
    ("complaint_id,content_id,market,policy_id,lodged_at,basis,outcome\n", "line 1: missing column(s) resolved_at"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,granted,2026-02-03T00:00:00Z,\n", "line 2: unknown outcome 'granted'"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,vibes,,,\n", "line 2: unknown basis 'vibes'"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,upheld,2026-02-01T12:00:00Z,\n", "line 2: resolved_at 2026-02-01T12:00:00Z is before lodged_at"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,,,\nk2,zzz,DE,hate,2026-02-02T00:00:00Z,visibility,,,\n", "line 3: unknown content_id 'zzz'"),
    (HEADER + "k1,a,DE,hate,2026-01-31T00:00:00Z,visibility,,,\n", "line 2: no decision for (a, DE, hate) before lodged_at"),
    (HEADER + "k1,a,IT,hate,2026-02-02T00:00:00Z,visibility,,,\n", "line 2: no decision for (a, IT, hate)"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,partially_reversed,2026-02-03T00:00:00Z,\n", "line 2: outcome partially_reversed needs new_action"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,,,\nk1,a,FR,hate,2026-02-02T00:00:00Z,visibility,,,\n", "line 3: complaint_id 'k1' repeats line 2"),
    (HEADER + "k1,a,DE,hate,yesterday,visibility,,,\n", "line 2: lodged_at 'yesterday' is not an ISO 8601 time"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,upheld,,\n", "line 2: outcome upheld without resolved_at"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,reversed,2999-01-01T00:00:00Z,\n", "line 2: resolved_at 2999-01-01T00:00:00Z is in the future"),
    (HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,partially_reversed,2026-02-03T00:00:00Z,erase\n", "line 2: unknown new_action 'erase'"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), BAD, ids=[e.split(": ", 1)[1][:30] for _, e in BAD])
def test_malformed_file_fails_in_one_line_with_its_line_number_and_imports_nothing(
    lake: Lake, tmp_path: Path, body: str, expected: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(BadInputError) as err:
        ingest_complaints(lake, path)
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message
    assert message.endswith("nothing was imported")
    _nothing_imported(lake)


def test_one_bad_line_among_good_ones_imports_nothing(lake: Lake, tmp_path: Path) -> None:
    body = HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,reversed,2026-02-03T00:00:00Z,\n"
    body += "k2,c,FR,scams,2026-02-02T00:00:00Z,visibility,upheld,2026-02-01T00:00:00Z,\n"
    with pytest.raises(BadInputError, match="line 3"):
        ingest_complaints(lake, write(tmp_path, body))
    _nothing_imported(lake)


def test_outcomes_write_decisions_of_record_once_per_file(lake: Lake, tmp_path: Path) -> None:
    body = (
        HEADER
        + "\n".join(
            [
                "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,reversed,2026-02-03T00:00:00Z,",  # lifts the removal
                "k2,b,DE,hate,2026-02-02T00:00:00Z,notice_no_action,reversed,2026-02-04T00:00:00Z,",  # imposes the tier
                "k3,c,FR,scams,2026-02-02T00:00:00Z,visibility,partially_reversed,2026-02-05T00:00:00Z,none",
                "k4,a,FR,hate,2026-02-02T00:00:00Z,visibility,upheld,2026-02-06T00:00:00Z,",  # confirmed by a person
                "k5,a,FR,hate,2026-02-02T06:00:00Z,visibility,omitted,2026-02-03T00:00:00Z,",
                "k6,c,FR,scams,2026-02-02T07:00:00Z,visibility,,,",  # pending
            ]
        )
        + "\n"
    )
    path = write(tmp_path, body)
    first = ingest_complaints(lake, path)
    assert first.committed and first.complaints == 6 and first.decisions == 4
    again = ingest_complaints(lake, path)
    assert not again.committed and again.complaints == 0
    assert pl.read_delta(lake.path("complaints")).height == 6
    appeals = pl.read_delta(lake.path("decisions")).filter(pl.col("source") == "appeal").sort("run_id")
    assert appeals.height == 4
    got = {
        r["run_id"]: (r["content_id"], r["market"], r["action"], r["automated"]) for r in appeals.iter_rows(named=True)
    }
    assert got == {
        "complaint:k1": ("a", "DE", "none", "NOT_AUTOMATED"),
        "complaint:k2": ("b", "DE", "remove", "NOT_AUTOMATED"),  # the hate policy's most severe tier
        "complaint:k3": ("c", "FR", "none", "NOT_AUTOMATED"),
        "complaint:k4": ("a", "FR", "demote", "NOT_AUTOMATED"),
    }
    assert set(appeals["model_name"]) == {"complaints"}
    assert appeals.filter(pl.col("run_id") == "complaint:k1")["decided_at"][0] == datetime(2026, 2, 3, tzinfo=UTC)
    # A later model decision (a sweep) does not override the decision of record.
    commit_decisions(lake, [decision("a", "DE", "hate", "remove", T0 + timedelta(days=30), run_id="sweep")], "sweep")
    cur = current_decisions(pl.scan_delta(lake.path("decisions"))).collect()
    assert cur.filter((pl.col("content_id") == "a") & (pl.col("market") == "DE"))["action"][0] == "none"


def test_pending_complaint_resolved_by_a_later_file_adds_its_decision(lake: Lake, tmp_path: Path) -> None:
    ingest_complaints(lake, write(tmp_path, HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,,,\n", "a.csv"))
    later = HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,reversed,2026-02-09T00:00:00Z,\n"
    summary = ingest_complaints(lake, write(tmp_path, later, "b.csv"))
    assert summary.decisions == 1 and summary.complaints == 1
    changed = HEADER + "k1,a,DE,hate,2026-02-02T00:00:00Z,visibility,upheld,2026-02-10T00:00:00Z,\n"
    with pytest.raises(BadInputError, match="line 2: complaint 'k1' was already resolved as reversed"):
        ingest_complaints(lake, write(tmp_path, changed, "c.csv"))


def test_parquet_file_is_validated_with_line_numbers_too(lake: Lake, tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "complaint_id": ["k1", "k2"], "content_id": ["a", "nope"], "market": ["DE", "DE"],
            "policy_id": ["hate", "hate"], "lodged_at": [T0 + timedelta(days=1)] * 2, "basis": ["visibility"] * 2,
            "outcome": [None, None], "resolved_at": [None, None],
        },
        schema_overrides={"outcome": pl.String, "resolved_at": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    path = tmp_path / "c.parquet"
    frame.write_parquet(path)
    with pytest.raises(BadInputError, match=r"line 3: unknown content_id 'nope'"):
        ingest_complaints(lake, str(path))
    frame.filter(pl.col("content_id") == "a").write_parquet(path)
    assert ingest_complaints(lake, str(path)).complaints == 1


def test_record_action_mapping() -> None:
    assert record_action("reversed", "remove", None, "remove") == "none"
    assert record_action("reversed", "review", None, "remove") == "remove"
    assert record_action("reversed", "none", "label", "remove") == "label"
    assert record_action("partially_reversed", "remove", "demote", None) == "demote"
    assert record_action("upheld", "label", None, None) == "label"
    assert record_action("upheld", "review", None, "remove") == "none"
    assert record_action("omitted", "label", None, None) is None
