"""Transparency report on a synthetic lake: every CSV keeps its template's header, first columns and
rows in order (only marked expansions), cells are well-formed, and the counting unit holds."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.complaints import ingest_complaints
from pipelines.lake import Lake
from pipelines.transparency import PARTS, Period, expand, load_template, measures, write_transparency_report
from pipelines.transparency.templates import ELLIPSES, LANGUAGES, MEMBER_STATES
from tests.unit.test_complaints_ingest import HEADER, T0, commit_decisions, decision, synthetic_lake

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "dsa-templates"
PERIOD = "2026-01-01/2026-06-30"


def _read(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_packaged_templates_are_the_published_ones() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"no shared templates at {SHARED}")
    for stem in PARTS:
        assert _read(SHARED / f"{stem}.csv") == [list(load_template(stem).header), *map(list, load_template(stem).rows)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Path]:
    root = tmp_path_factory.mktemp("transparency")
    lake = synthetic_lake(root / "lake")
    later = T0 + timedelta(days=10)
    commit_decisions(
        lake,
        [
            decision("a", "DE", "hate", "remove", later, run_id="sweep"),  # re-decided: not a new measure
            decision("d", "US", "hate", "remove", later),  # outside the EEA: no measure
            decision("e", "FR", "violence", "remove", later, automated="PARTIALLY"),  # not solely automated
            decision("f", "DE", "child_safety", "remove", later, source="hash_match", model_name="known_csam"),
            decision("g", "DE", "hate", "remove", datetime(2026, 7, 1, tzinfo=UTC)),  # after the period
        ],
        "more",
    )
    body = HEADER + "k1,b,DE,hate,2026-02-02T00:00:00Z,notice_no_action,reversed,2026-02-04T00:00:00Z,\n"
    body += "k2,c,FR,scams,2026-02-02T00:00:00Z,visibility,upheld,2026-02-02T10:00:00Z,\n"
    body += "k3,a,FR,hate,2026-02-03T00:00:00Z,visibility,,,\n"
    (root / "c.csv").write_text(body, encoding="utf-8")
    ingest_complaints(lake, str(root / "c.csv"))
    out = root / "report"
    write_transparency_report(
        lake, PERIOD, service="Example", provider="Example BV", published=date(2026, 8, 1), vlop=True, out=str(out),
        draws=200,
    )  # fmt: skip
    return lake, out


def _collapse(template_rows: list[list[str]], got: list[list[str]], stem: str) -> None:
    """Every output row maps, in order, onto the template row it copies; expansions only where marked.

    A row whose scope the template marks ``[...]`` may become several rows that differ only in
    their scope (a language or Member State code); Part 8's accuracy rows may repeat per
    automated system; every other row appears exactly once.
    """
    t = load_template(stem)
    rows = [tuple(r) for r in template_rows]
    scope_col = t.header.index("Scope") if "Scope" in t.header else None
    i = 0
    for k, trow in enumerate(rows):
        ident = t.identity(trow)
        nxt = t.identity(rows[k + 1]) if k + 1 < len(rows) else None
        marked = scope_col is not None and any(e in trow[scope_col] for e in ELLIPSES)
        repeats = stem == "Part_8_automated_means" and trow[4].startswith("Accuracy")
        n = 0
        while i < len(got):
            g = t.identity(got[i])
            if marked:
                same = g[:-1] == ident[:-1] and got[i][scope_col] in LANGUAGES + MEMBER_STATES and g != nxt  # type: ignore[index]
            else:
                same = g == ident and (n == 0 or repeats)
            if not same:
                break
            n += 1
            i += 1
        assert n >= 1, f"{stem}: template row {trow[:6]} missing at output row {i + 2}"
    assert i == len(got), f"{stem}: extra output rows from {i + 2}"


def test_every_part_keeps_its_template(report: tuple[Lake, Path]) -> None:
    _, out = report
    source = SHARED if SHARED.is_dir() else None
    for stem in PARTS:
        rows = _read(out / f"{stem}.csv")
        published = _read(source / f"{stem}.csv") if source else [list(load_template(stem).header)]
        assert rows[0] == published[0], stem  # header, byte for byte (trailing spaces included)
        _collapse(published[1:], rows[1:], stem)
        assert (out / f"{stem}.csv").read_bytes().count(b"\r\n") == len(rows)  # RFC 4180 line ends
        t = load_template(stem)
        for r in rows[1:]:
            if "Reporting period" in t.header:
                assert r[t.header.index("Reporting period")] == PERIOD
            if "Service" in t.header:
                assert r[t.header.index("Service")] == "Example"
    versions = json.loads((out / "versions.json").read_text())
    assert versions["reporting_period"] == PERIOD and versions["table_versions"]["decisions"]["version"] >= 1


def _cells(out: Path, stem: str) -> list[dict[str, str]]:
    with (out / f"{stem}.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_counting_unit_and_parts(report: tuple[Lake, Path]) -> None:
    _, out = report
    p5 = _cells(out, "Part_5_own_initiative_illegal")
    total = p5[0]
    own = "Number of measures taken at the provider's own initiative "
    solely = "Number of measures taken after detection with solely automated means "
    # Illegal-ground policies (hate, child_safety): a (DE, FR: one measure), f (hash match);
    # b's restriction is imposed by an appeal (Part 7), g is after the period, d outside the EEA.
    assert total[own] == "2" and total[solely] == "2"
    assert total["Visibility restriction Removal"] == "2"
    assert total["Monetary restriction Suspension"] == ""  # never imposed by this service: blank
    hate = next(r for r in p5 if r["Category of illegal content"] == "KEYWORD_HATE_SPEECH")
    assert hate[own] == "1"
    animals = next(r for r in p5 if r["Category of illegal content"] == "STATEMENT_CATEGORY_ANIMAL_WELFARE")
    assert animals[own] == "0"  # applicable and none
    p6 = _cells(out, "Part_6_own_initiative_TC")
    assert p6[0][own] == "2" and p6[0][solely] == "1"  # c (scams, label), e (violence, waits for review)
    p7 = {(r["Indicator"], r["Scope"]): r["Value"] for r in _cells(out, "Part_7_appeals_and_recidivism")}
    total7 = "Number of complaints submitted to the internal-complaints mechanism"
    assert p7[(total7, "Total number")] == "3"
    assert p7[(total7, "Decisions reversed")] == "1" and p7[(total7, "Decisions upheld")] == "1"
    assert p7[(total7, "Median time")] == "29"  # median of 48 h and 10 h
    assert p7[("Number of restrictions newly imposed as a result of an internal complaint", "Total number")] == "1"
    p8 = _cells(out, "Part_8_automated_means")
    first = {(r["Indicator"], r["Scope"]): r["Value"] for r in p8}
    assert first[("Number of measures solely taken by automated means ", "Own-initiative ")] == "3"
    assert first[("Number of measures not taken by automated means", "Own-initiative ")] == "1"
    assert first[("Number of measures not taken by automated means", "Total number")] == "2"
    de = [r for r in p8 if r["Scope"] == "de" and r["Indicator"].startswith("Number of measures solely")]
    assert de and de[0]["Value"] == "3"
    assert all(r["Value"] == "" for r in p8 if r["Scope"].startswith("NAM"))


def test_measure_begins_again_after_a_lift(tmp_path: Path) -> None:
    lake = synthetic_lake(tmp_path / "lake")
    t = T0 + timedelta(days=1)
    commit_decisions(lake, [decision("c", "FR", "scams", "none", t, run_id="s1")], "lift")
    commit_decisions(lake, [decision("c", "FR", "scams", "label", t + timedelta(days=1), run_id="s2")], "again")
    period = Period.parse(PERIOD)
    found = measures(pl.scan_delta(lake.path("decisions")), start=period.start, end=period.end)
    assert found.filter(pl.col("content_id") == "c").height == 2
    assert found.filter(pl.col("content_id") == "a")["action"].to_list() == ["remove"]


def test_expansions_are_only_the_marked_ones() -> None:
    t = load_template("Part_10_AMAR")
    scopes = [r.get("Scope") for r in expand(t)]
    assert scopes == ["TOTAL", *MEMBER_STATES]
    p8 = expand(load_template("Part_8_automated_means"), systems=("model:a", "hash_match:b"))
    assert sum(1 for r in p8 if r.system == "hash_match:b") == sum(1 for r in p8 if r.system == "model:a") > 0


def test_period_is_validated() -> None:
    from pipelines.errors import BadConfigError

    with pytest.raises(BadConfigError, match="YYYY-MM-DD/YYYY-MM-DD"):
        Period.parse("2026-01-01")
    with pytest.raises(BadConfigError, match="before"):
        Period.parse("2026-06-30/2026-01-01")


def test_the_template_check_catches_reordered_missing_and_extra_rows() -> None:
    t = load_template("Part_5_own_initiative_illegal")
    rows = [r.cells for r in expand(t)]
    template_rows = [list(r) for r in t.rows]
    _collapse(template_rows, rows, t.stem)
    for broken in (
        [rows[1], rows[0], *rows[2:]],  # reordered
        rows[:-1],  # a row missing
        [*rows, rows[-1]],  # a row repeated
    ):
        with pytest.raises(AssertionError):
            _collapse(template_rows, broken, t.stem)
    p8 = load_template("Part_8_automated_means")
    extra = [r.cells for r in expand(p8, systems=("model:a",))]
    extra.insert(1, list(extra[0]))  # a count row repeated: not a marked expansion
    with pytest.raises(AssertionError):
        _collapse([list(r) for r in p8.rows], extra, p8.stem)


def test_hash_system_recall_says_why_it_is_not_estimable() -> None:
    """A bank decides only what it lists: its null recall is explained as such, not as missing labels."""
    from dataclasses import replace as dc_replace
    from datetime import UTC, datetime

    import polars as pl

    from pipelines.transparency.figures import Figures
    from pipelines.transparency.report import _estimate

    acc = pl.DataFrame(
        {"system": ["hash_match:known_terror", "model:starter"], "language": [None, None], "recall": [None, None]},
        schema={"system": pl.String, "language": pl.String, "recall": pl.Float64},
    )
    f = Figures(
        period=None, pins={}, packs={}, measures=pl.DataFrame(), complaints=pl.DataFrame(), accuracy=acc,  # type: ignore[arg-type]
        policies=pl.DataFrame(), visibilities=frozenset(), systems=(), sample_run=None, pin_time=datetime.now(UTC),
    )  # fmt: skip
    value, note = _estimate(f, "hash_match:known_terror", None, "recall")
    assert value is None and note is not None and "decides only the material it lists" in note
    value, note = _estimate(dc_replace(f), "model:starter", None, "recall")
    assert value is None and note is not None and "no labelled review unit" in note
