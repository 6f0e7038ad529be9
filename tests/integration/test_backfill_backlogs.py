"""Backfills of real-world Delta backlogs: partitions, schema evolution, duplicates, rewrites, many files.

One backlog is built the way teams' tables look (partitioned by a date string and content type,
an extra column, no ``markets`` column at first and one added later, duplicate ids within one
append and across appends, an append of many small files), then changed by UPDATE and MERGE.
Each step runs the real CLI against the shared local Ray: exit 0, no traceback, every valid row
scored once, every bad row a dead letter with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake import Lake
from tests.integration.helpers import TINY_URI, batchjobs, delta_commits, make_lake, read, run_ok

PARTS = ["day", "content_type"]


def _backfill(lake: Lake, ray: str, *extra: str) -> str:
    out = run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, "--chunk-rows", "150", *extra, ray_address=ray)
    return out


def _append(uri: str, frame: pl.DataFrame, **kw: object) -> None:
    from deltalake import write_deltalake

    write_deltalake(uri, frame.to_arrow(), mode="append", partition_by=PARTS, schema_mode="merge", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory, ray_cluster: str) -> dict[str, object]:
    """A lake whose backlog is theirs, not the generator's; backfilled once."""
    root = tmp_path_factory.mktemp("messy")
    src = make_lake(root / "src", rows=420, bad_rows=0)
    rows = read(src, "backlog").filter(pl.col("content_id").is_not_null()).unique("content_id").sort("content_id")
    rows = rows.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%d").alias("day"), pl.lit("x").alias("extra"))
    lake = make_lake(root / "lake", rows=1)  # the tiny model and an MLflow store; its backlog is replaced
    uri = str(Path(lake.root) / "theirs")
    first = rows.slice(0, 200).drop("markets")  # no markets column yet
    dup_within = first.slice(0, 2).with_columns(pl.col("created_at") + timedelta(days=1))
    _append(uri, pl.concat([first, dup_within]))
    # Later appends carry markets (a column the table did not have) and repeat three old ids.
    second = rows.slice(200, 120)
    dup_across = rows.slice(10, 3).with_columns(pl.col("created_at") + timedelta(days=2))
    _append(uri, pl.concat([second, dup_across], how="diagonal_relaxed"))
    # Many small files in one commit: one per (day, type) partition of 100 rows with distinct days.
    small = rows.slice(320, 100).with_columns(
        (pl.lit(datetime(2025, 1, 1, tzinfo=UTC)) + pl.duration(days=pl.int_range(0, 100))).alias("created_at")
    )
    _append(uri, small.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%d").alias("day")))
    out = _backfill(lake, ray_cluster, "--backlog", uri)
    return {"lake": lake, "uri": uri, "rows": rows, "out": out}


def _scores(lake: Lake) -> pl.DataFrame:
    return read(lake, "scores")


def test_partitioned_evolving_backlog_scores_every_valid_row_once(messy: dict[str, object]) -> None:
    lake, rows = messy["lake"], messy["rows"]
    assert isinstance(lake, Lake) and isinstance(rows, pl.DataFrame)
    scores = _scores(lake)
    per_item = scores.group_by("content_id").agg(pl.col("policy_id").n_unique().alias("n"), pl.len().alias("rows"))
    assert set(per_item["content_id"].to_list()) == set(rows["content_id"].to_list())  # 420 valid ids
    assert (per_item["n"] == per_item["rows"]).all()  # one score row per (item, policy)
    # Partition values came back as columns: every score row knows its content type.
    assert scores["content_type"].null_count() == 0
    # Rows of the first append had no markets column: decided in their region.
    decisions = read(lake, "decisions")
    first_ids = rows.slice(0, 200)["content_id"]
    markets = decisions.filter(pl.col("content_id").is_in(first_ids.implode())).select("content_id", "market").unique()
    regions = rows.slice(0, 200).select("content_id", pl.col("region").alias("market"))
    assert markets.sort("content_id").equals(regions.sort("content_id"))


def test_duplicates_within_and_across_appends_are_dead_letters_exactly_once(messy: dict[str, object]) -> None:
    lake, rows = messy["lake"], messy["rows"]
    assert isinstance(lake, Lake) and isinstance(rows, pl.DataFrame)
    dead = read(lake, "dead_letters")
    dups = dead.filter(pl.col("error_class") == "DuplicateContentId")
    assert dups.height == 5  # 2 within the first append, 3 repeated by the second
    assert set(dups["content_id"].to_list()) == set(rows.slice(0, 2)["content_id"]) | set(
        rows.slice(10, 3)["content_id"]
    )
    assert dups["message"].str.contains("first copy is scored").all()
    # The first copy was scored (from the first append), once.
    first = _scores(lake).filter(pl.col("content_id").is_in(dups["content_id"].implode()))
    assert first.select("content_id", "policy_id").is_duplicated().sum() == 0
    assert "Traceback" not in str(messy["out"])


def test_many_small_files_share_units(messy: dict[str, object]) -> None:
    lake = messy["lake"]
    assert isinstance(lake, Lake)
    # 525 rows in ~110 files with --chunk-rows 150: 4 units, 4 scores commits (+ creation).
    assert delta_commits(lake, "scores") <= 1 + 4 + 1


def test_update_with_unchanged_content_is_skipped_and_an_edit_is_rescored(
    messy: dict[str, object], ray_cluster: str
) -> None:
    from deltalake import DeltaTable

    lake, uri, rows = messy["lake"], messy["uri"], messy["rows"]
    assert isinstance(lake, Lake) and isinstance(uri, str) and isinstance(rows, pl.DataFrame)
    before = _scores(lake).height
    dead_before = read(lake, "dead_letters").height
    # UPDATE rewrites the files of these rows; their content is unchanged.
    ids = rows.slice(20, 5)["content_id"].to_list()
    quoted = ", ".join(f"'{i}'" for i in ids)
    DeltaTable(uri).update(predicate=f"content_id IN ({quoted})", updates={"extra": "'touched'"})
    out = _backfill(lake, ray_cluster, "--backlog", uri)
    assert "scored 0," in out and "dead-lettered 0," in out and "0 edits re-scored" in out, out
    assert _scores(lake).height == before and read(lake, "dead_letters").height == dead_before
    # MERGE that changes the text of two items: an edit, re-scored under the same model.
    changed = rows.slice(30, 2).select("content_id", pl.lit("a completely new text").alias("text"))
    (
        DeltaTable(uri)
        .merge(changed.to_arrow(), predicate="t.content_id = s.content_id", source_alias="s", target_alias="t")
        .when_matched_update(updates={"text": "s.text"})
        .execute()
    )
    out = _backfill(lake, ray_cluster, "--backlog", uri)
    assert "2 edits re-scored" in out and "dead-lettered 0," in out, out
    edited = _scores(lake).filter(pl.col("content_id").is_in(changed["content_id"].implode()))
    assert edited.group_by("content_id", "policy_id").len()["len"].max() == 2  # before and after the edit
    assert edited["content_sha256"].n_unique() == 4


def test_since_until_then_a_full_run_scores_the_rest_once(tmp_path: Path, ray_cluster: str) -> None:
    lake = make_lake(tmp_path / "lake", rows=300, bad_rows=6)
    backlog = read(lake, "backlog")
    cut = backlog["created_at"].sort()[150]
    out = _backfill(lake, ray_cluster, "--until", cut.isoformat())
    window = backlog.filter(pl.col("created_at") < cut)
    scored = int(out.split("scored ")[1].split(",")[0])
    assert 0 < scored <= window.height
    out = _backfill(lake, ray_cluster, "--limit", "40")
    assert int(out.split("scored ")[1].split(",")[0]) + int(out.split("dead-lettered ")[1].split(",")[0]) <= 40
    _backfill(lake, ray_cluster)
    scores = _scores(lake)
    assert scores.select("content_id", "policy_id").is_duplicated().sum() == 0
    good = set(pl.read_delta(lake.path("ground_truth"))["content_id"].to_list())
    assert set(scores["content_id"].to_list()) == good


def test_a_lake_written_before_row_positions_keeps_working(tmp_path: Path, ray_cluster: str) -> None:
    """A lake made by the previous release: scores without source_file/source_row, no progress table."""
    import shutil

    from deltalake import write_deltalake

    lake = make_lake(tmp_path / "lake", rows=200, bad_rows=0)
    _backfill(lake, ray_cluster)
    counts = {t: read(lake, t).height for t in ("scores", "decisions")}
    old = read(lake, "scores").drop("source_file", "source_row")
    write_deltalake(lake.path("scores"), old.to_arrow(), mode="overwrite", schema_mode="overwrite")
    shutil.rmtree(lake.path("backfill_progress"))
    out = _backfill(lake, ray_cluster)
    assert "scored 0," in out, out
    assert {t: read(lake, t).height for t in ("scores", "decisions")} == counts
    assert "read 0 rows" in _backfill(lake, ray_cluster)  # the progress table exists again


def test_content_id_of_the_wrong_type_fails_in_one_line(tmp_path: Path, ray_cluster: str) -> None:
    from deltalake import write_deltalake

    lake = make_lake(tmp_path / "lake", rows=1)
    uri = str(tmp_path / "ints")
    frame = read(lake, "backlog").with_columns(pl.lit(7, pl.Int64).alias("content_id"))
    write_deltalake(uri, frame.to_arrow())
    proc = batchjobs("backfill", "--lake", lake.root, "--model", TINY_URI, "--backlog", uri, ray_address=ray_cluster)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "column 'content_id' has type int64, expected string" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_media_is_hashed_once_whatever_model_scores_it(tmp_path: Path, ray_cluster: str) -> None:
    from pipelines.model import TinyModel, register_model

    lake = make_lake(tmp_path / "lake", rows=150, bad_rows=3)
    out = _backfill(lake, ray_cluster)
    hashes = read(lake, "media_hashes")
    backlog = read(lake, "backlog").filter(pl.col("content_id").is_in(_scores(lake)["content_id"].unique().implode()))
    want = backlog.select(
        (pl.col("image").is_not_null().cast(pl.Int64) + pl.col("frames").list.len().fill_null(0)).sum()
    ).item()
    assert hashes.height == want > 0 and f"{want} images and keyframes hashed" in out
    assert hashes.select("content_id", "frame").is_duplicated().sum() == 0
    assert set(hashes["frame"].unique().to_list()) >= {-1, 0}
    assert hashes["pdq"].bin.size().unique().to_list() == [32]
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)  # a new champion: version 2
    out = _backfill(lake, ray_cluster)
    assert "(model tiny/2" in out and "0 images and keyframes hashed" in out, out
    assert read(lake, "media_hashes").height == want


def test_a_backfill_matches_its_new_media_against_the_banks(tmp_path: Path, ray_cluster: str) -> None:
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake
    from pipelines.model import TinyModel, register_model

    lake = open_lake(str(tmp_path / "lake"))
    summary = generate_backlog(lake, GenerateConfig(rows=60, seed=4, known=4))
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)
    for bank, path in summary.known_banks.items():
        run_ok("hashes", "import", "--lake", lake.root, "--bank", bank, path)
    out = _backfill(lake, ray_cluster)
    matches = read(lake, "decisions").filter(pl.col("source") == "hash_match")
    assert f"{matches.height} hash-match decisions" in out and matches.height > 0, out
    truth = pl.read_delta(lake.path("ground_truth"))
    copies = truth.filter(pl.col("family").str.contains("_copy/(reencode|resize)"))["content_id"].unique()
    lookalikes = truth.filter(pl.col("family") == "benign/known_lookalike")["content_id"].unique()
    matched = set(matches["content_id"].to_list())
    found = len(set(copies.to_list()) & matched)
    assert found >= 0.9 * copies.len() > 0  # re-encoded and resized copies (one 50% resize can land at 32 bits)
    assert not matched & set(lookalikes.to_list())  # look-alikes: none
    assert set(matches["policy_id"].unique().to_list()) <= {"child_safety", "terrorist_content"}
    assert matches["model_version"].str.starts_with("hash:known_").all()
    # The next run has no new media and adds no match.
    again = _backfill(lake, ray_cluster)
    assert (
        "0 hash-match decisions" in again
        and read(lake, "decisions").filter(pl.col("source") == "hash_match").height == matches.height
    )
