"""Audit on a real backfilled lake: counts reconcile, pinned reruns are identical, the HTML renders,
statements of reasons validate, reports leak no content, and bad input fails in one line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from batchjobs.cli import main
from pipelines import markets as mk
from pipelines.audit import (
    AuditConfig,
    SampleConfig,
    ingest_labels_from_ground_truth,
    run_audit,
    sample_for_review,
)
from pipelines.lake import Lake, open_lake
from tests.integration.helpers import TINY_URI, copy_lake, make_lake, read, run_ok

ROWS, BAD = 1500, 12
SCHEMA = Path(__file__).resolve().parents[2] / "pipelines" / "dsa_statement.schema.json"
KEY = ["content_id", "market", "policy_id"]


@pytest.fixture(scope="module")
def lake(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """One backfilled lake with a labelled review sample, shared by every test here (read-only)."""
    from pipelines.backfill import BackfillConfig, run_backfill

    lake = make_lake(tmp_path_factory.mktemp("audit") / "lake", rows=ROWS, bad_rows=BAD, enrich=20.0)
    run_backfill(BackfillConfig(lake=lake, model_uri=TINY_URI, chunk_rows=500), ray_address=ray_cluster)
    sample_for_review(SampleConfig(lake=lake, per_stratum=8, seed=3))
    ingest_labels_from_ground_truth(lake)
    return lake


@pytest.fixture(scope="module")
def report(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit of the whole lake, run through the real CLI in its own process."""
    out = tmp_path_factory.mktemp("report")
    run_ok("audit", "--lake", lake.root, "--out", str(out))
    return out


def _current(lake: Lake) -> pl.DataFrame:
    """The direct query: latest committed row per key, straight from the decisions table."""
    d = read(lake, "decisions")
    return d.sort("decided_at", "policy_version", "model_version", "run_id").unique(KEY, keep="last")


def test_every_count_reconciles_with_a_direct_query_of_decisions(lake: Lake, report: Path) -> None:
    rows = pl.read_parquet(report / "report.parquet")
    cur = _current(lake)
    regions = [(m, "market", [m]) for m in cur["market"].unique().to_list()]
    regions += [(g, "group", list(members)) for g, members in mk.GROUPS.items()]
    checked = 0
    for region, kind, members in regions:
        sub = cur.filter(pl.col("market").is_in(members))
        for policy in sub["policy_id"].unique().to_list():
            mine = sub.filter(pl.col("policy_id") == policy)
            got = rows.filter(
                (pl.col("region") == region) & (pl.col("region_kind") == kind) & (pl.col("policy_id") == policy)
            )
            assert got.height == 1, (region, policy)
            r = got.row(0, named=True)
            assert r["decisions"] == mine.height
            assert r["items_scored"] == mine["content_id"].n_unique()
            assert r["actioned"] == mine.filter(pl.col("action") != "none").height
            for action in ("none", "review", "label", "demote", "age_restrict", "remove"):
                assert r[f"action_{action}"] == mine.filter(pl.col("action") == action).height, (region, action)
            acted = mine.filter(pl.col("action") != "none")
            for value, name in (("FULLY", "fully"), ("PARTIALLY", "partially"), ("NOT_AUTOMATED", "not")):
                assert r[f"automated_{name}"] == acted.filter(pl.col("automated") == value).height
            assert r["items_in_scope"] == r["items_scored"] + r["items_failed"]
            if not r["counts_only"]:
                hours = (mine["decided_at"] - mine["created_at"]).dt.total_seconds(fractional=True) / 3600
                assert r["hours_to_decision_p50"] == pytest.approx(hours.median())
                assert r["score_p90"] == pytest.approx(mine["score"].quantile(0.9, interpolation="linear"))
            checked += 1
    assert checked == rows.filter(pl.col("decisions") > 0).height
    # Failed items: dead letters without any decision, in the markets the backlog lists for them.
    dead = read(lake, "dead_letters").filter(pl.col("content_id").is_not_null())
    dead = dead.filter(~pl.col("content_id").is_in(cur["content_id"].unique().implode()))
    backlog = read(lake, "backlog").select("content_id", "region", "markets").unique("content_id")
    placed = dead.join(backlog, on="content_id").with_columns(
        pl.when(pl.col("markets").list.len() > 0).then(pl.col("markets")).otherwise(pl.concat_list("region"))
    )
    expected = placed.explode("markets").group_by("markets").agg(pl.col("content_id").n_unique())
    for market, n in expected.iter_rows():
        got = rows.filter((pl.col("region") == market) & (pl.col("region_kind") == "market"))
        if got.height:
            assert got["items_failed"].unique().to_list() == [n], market


def test_report_json_matches_parquet_and_records_lineage(lake: Lake, report: Path) -> None:
    doc = json.loads((report / "report.json").read_text())
    rows = pl.read_parquet(report / "report.parquet")
    assert len(doc["rows"]) == rows.height
    assert [r["decisions"] for r in doc["rows"]] == rows["decisions"].to_list()
    versions = doc["lineage"]["table_versions"]
    from deltalake import DeltaTable

    assert versions["decisions"]["version"] == DeltaTable(lake.path("decisions")).version()
    assert doc["lineage"]["policy_versions"] and all(doc["lineage"]["policy_versions"].values())
    assert doc["lineage"]["run_ids"] and doc["lineage"]["model_versions"] == ["tiny/1"]
    assert rows["run_ids"].list.len().min() >= 1
    # Accuracy estimates exist and their intervals contain them.
    est = rows.filter(pl.col("precision").is_not_null())
    assert est.height > 0
    assert (est["precision_low"] <= est["precision"]).all() and (est["precision"] <= est["precision_high"]).all()
    assert doc["accuracy_by_language"]


def test_child_safety_rows_show_counts_only(report: Path) -> None:
    rows = pl.read_parquet(report / "report.parquet").filter(pl.col("policy_id") == "child_safety")
    assert rows.height and rows["counts_only"].all()
    for col in ("score_p50", "score_p99", "hours_to_decision_p50", "precision", "recall", "accuracy"):
        assert rows[col].null_count() == rows.height, col
    assert rows["decisions"].sum() > 0


def test_no_item_text_image_or_id_leaks_into_reports(lake: Lake, report: Path) -> None:
    backlog = read(lake, "backlog").filter(pl.col("text").str.len_chars() > 24)
    blobs = {p.name: p.read_bytes() for p in report.iterdir()}
    texts = backlog["text"].head(300).to_list()
    for name, blob in blobs.items():
        if name.endswith(".parquet"):
            blob = json.dumps(pl.read_parquet(report / name).to_dicts(), default=str).encode()
        for text in texts:
            assert text.encode() not in blob, f"{name} contains an item's text"
        assert b"data:image" not in blob and b"<img" not in blob, name
    sor = (report / "statements_of_reasons.jsonl").read_text()
    sample_ids = read(lake, "decisions")["content_id"].unique().head(200).to_list()
    assert not any(cid in sor for cid in sample_ids), "statements name content ids"


def test_every_statement_of_reasons_validates_against_the_schema(lake: Lake, report: Path) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    lines = (report / "statements_of_reasons.jsonl").read_text().splitlines()
    assert lines
    for i, line in enumerate(lines, 1):
        errors = sorted(validator.iter_errors(json.loads(line)), key=str)
        assert not errors, f"line {i}: {errors[0].message}"
    statements = [json.loads(x) for x in lines]
    assert len({s["puid"] for s in statements}) == len(statements)
    cur = _current(lake).filter(
        pl.col("action").is_in(["label", "demote", "age_restrict", "remove"]) & pl.col("market").is_in(list(mk.EEA))
    )
    assert len(statements) == cur.select("content_id", "policy_id").n_unique()
    assert {s["source_type"] for s in statements} == {"SOURCE_VOLUNTARY"}
    scope = {m for s in statements for m in s["territorial_scope"]}
    assert scope <= set(mk.EEA)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_index_html_renders_in_headless_chromium_without_console_errors(report: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    html = (report / "index.html").read_text()
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        proc = subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}/data", f"--screenshot={shot}", "--window-size=1280,4000",
                "--enable-logging=stderr", "--v=0", (report / "index.html").as_uri(),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
        assert not console, "\n".join(console)
        assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]


def test_pinned_audit_is_identical_after_further_backfills(lake: Lake, ray_cluster: str, tmp_path: Path) -> None:
    from pipelines.backfill import BackfillConfig, run_backfill

    own = copy_lake(lake, tmp_path / "lake")
    time.sleep(1.1)  # commit timestamps have millisecond resolution: leave a clear gap
    pinned = datetime.now(UTC)
    time.sleep(1.1)
    first = run_audit(AuditConfig(lake=own, out=str(tmp_path / "a"), as_of=pinned), html=False)
    # A new pack version with lower thresholds re-decides from the stored scores.
    text = (Path(__file__).resolve().parents[2] / "batchjobs" / "packs" / "default.yaml").read_text()
    # A new version of whatever the default pack is now (the literal version moves with the pack).
    text = re.sub(r'^version: ".*"$', 'version: "9.1.0"', text, count=1, flags=re.M)
    text = text.replace(
        "default: {review: 0.5, demote: 0.75, remove: 0.9}", "default: {review: 0.2, demote: 0.4, remove: 0.6}"
    )
    pack = tmp_path / "pack.yaml"
    pack.write_text(text)
    run_backfill(BackfillConfig(lake=own, model_uri=TINY_URI, policy=str(pack)), ray_address=ray_cluster)
    assert read(own, "decisions")["policy_version"].n_unique() == 2
    again = run_audit(AuditConfig(lake=own, out=str(tmp_path / "b"), as_of=pinned), html=False)
    a, b = pl.read_parquet(first.report_parquet), pl.read_parquet(again.report_parquet)
    assert a.equals(b), "a pinned audit changed after later commits"
    now = run_audit(AuditConfig(lake=own, out=str(tmp_path / "c")), html=False)
    c = pl.read_parquet(now.report_parquet)
    assert c["version_decisions"][0] > a["version_decisions"][0]
    hate = c.filter((pl.col("region") == "GLOBAL") & (pl.col("policy_id") == "hate"))
    assert hate["policy_versions"].to_list()[0] == ["trustbatch-default@9.1.0"]


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code != 0, err
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_non_zero(lake: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = open_lake(str(tmp_path / "empty"))
    assert "no decisions table" in _fails(capsys, "audit", "--lake", empty.root)
    err = _fails(capsys, "audit", "--lake", lake.root, "--from", "2026-06-01", "--to", "2026-05-01")
    assert "--from" in err and "before --to" in err
    assert "unknown market" in _fails(capsys, "audit", "--lake", lake.root, "--market", "XX")
    assert "unknown policy" in _fails(capsys, "audit", "--lake", lake.root, "--policy", "nope")
    samples = read(lake, "review_samples")
    good = samples["sample_id"][0]
    csv = tmp_path / "labels.csv"
    csv.write_text(f"sample_id,label\n{good},violating\nmissing-id,violating\n{samples['sample_id'][1]},maybe\n")
    err = _fails(capsys, "review", "ingest", "--lake", lake.root, str(csv))
    assert "line 3: unknown sample_id 'missing-id'" in err and "line 4: unknown label 'maybe'" in err
    assert "nothing was loaded" in err
    before = read(lake, "review_labels").height
    assert before == read(lake, "review_labels").height


def test_csv_labels_load_once_and_resampling_is_idempotent(lake: Lake, tmp_path: Path) -> None:
    own = copy_lake(lake, tmp_path / "lake")
    samples = read(own, "review_samples").head(3)
    csv = tmp_path / "labels.csv"
    lines = ["sample_id,label,reviewer"] + [f"{s},not_violating,alice" for s in samples["sample_id"]]
    csv.write_text("\n".join(lines) + "\n")
    before = read(own, "review_labels").height
    assert main(["review", "ingest", "--lake", own.root, str(csv)]) == 0
    assert main(["review", "ingest", "--lake", own.root, str(csv)]) == 0
    assert read(own, "review_labels").height == before + 3
    runs = read(own, "review_samples")["sample_run"].unique().to_list()
    assert main(["review", "sample", "--lake", own.root, "--per-stratum", "8", "--seed", "3"]) == 0
    assert read(own, "review_samples")["sample_run"].unique().to_list() == runs


def test_period_and_market_filters(lake: Lake, tmp_path: Path) -> None:
    cur = _current(lake)
    mid = cur["decided_at"].sort()[cur.height // 2]
    res = run_audit(
        AuditConfig(lake=lake, out=str(tmp_path / "p"), start=mid, markets=("DE", "EU"), by=("content_type",)),
        html=True,
        statements=False,
    )
    rows = pl.read_parquet(res.report_parquet)
    assert set(rows["region"].unique().to_list()) <= {"DE", "EU"}
    de = cur.filter((pl.col("market") == "DE") & (pl.col("decided_at") >= mid))
    got = (
        rows.filter(pl.col("region") == "DE")
        .group_by("content_type")
        .agg(pl.col("decisions").sum())
        .sort("content_type")
    )
    want = de.group_by("content_type").agg(pl.len().alias("decisions")).sort("content_type")
    assert got["decisions"].cast(pl.Int64).to_list() == want["decisions"].cast(pl.Int64).to_list()
    assert re.search(r"audit-\d{8}T\d{6}Z-", AuditConfig(lake=lake, start=mid).out_dir())


def test_ray_buckets_give_the_report_of_one_local_bucket(lake: Lake, ray_cluster: str) -> None:
    """Seven hash buckets aggregated on Ray tasks and merged = one bucket in this process, bit for bit."""
    from pipelines.audit.run import compute

    pinned = datetime.now(UTC)
    local = compute(AuditConfig(lake=lake, as_of=pinned, buckets=1, use_ray=False))
    ray_7 = compute(AuditConfig(lake=lake, as_of=pinned, buckets=7, use_ray=True))
    assert ray_7.rows.equals(local.rows)
    assert ray_7.by_language.equals(local.by_language)
    assert ray_7.coverage.equals(local.coverage)
    key = ["content_id", "market", "policy_id"]
    assert ray_7.sor_rows.sort(key).equals(local.sor_rows.sort(key))
    assert ray_7.lineage == local.lineage


def test_statements_written_by_partitions_on_ray_equal_those_of_one_local_partition(
    lake: Lake, ray_cluster: str, tmp_path: Path
) -> None:
    """Each partition writes its own statements of reasons (a part file); the report's file joins
    them: the same statements and report as one local partition, and no part is left behind."""
    pinned = datetime.now(UTC)
    one = run_audit(AuditConfig(lake=lake, as_of=pinned, buckets=1, use_ray=False, out=str(tmp_path / "one")))
    # 19 partitions: merge tasks fold them 8 at a time, the driver folds the rest.
    many = run_audit(AuditConfig(lake=lake, as_of=pinned, buckets=19, use_ray=True, out=str(tmp_path / "many")))
    lines = [sorted(Path(r.statements or "").read_text().splitlines()) for r in (one, many)]
    assert lines[0] and lines[0] == lines[1]
    assert one.statements_written == many.statements_written == len(lines[0])
    assert pl.read_parquet(many.report_parquet).equals(pl.read_parquet(one.report_parquet))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many", "one"]  # the parts are gone
