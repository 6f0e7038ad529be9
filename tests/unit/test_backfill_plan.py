"""Backfill planning (files from the log, units, key-level checks) and its user-facing errors, without Ray."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from batchjobs.cli import main
from pipelines.backfill.config import BackfillConfig
from pipelines.backfill.files import WorkFile, changed_files, snapshot_files
from pipelines.backfill.plan import Plan, make_plan
from pipelines.backfill.read import META, Slice, read_table
from pipelines.backfill.units import Units
from pipelines.errors import BadConfigError, BadInputError
from pipelines.generate import GenerateConfig, generate_backlog
from pipelines.lake import Lake, open_lake

TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = open_lake(str(tmp_path_factory.mktemp("plan") / "lake"))
    generate_backlog(lake, GenerateConfig(rows=400, seed=2, bad_rows=22))
    return lake


def _plan(lake: Lake, **kw: object) -> Plan:
    return make_plan(BackfillConfig(lake=lake, **kw), model_version="1", policy_version="p@1", use_ray=False)  # type: ignore[arg-type]


def test_metadata_problems_and_duplicates_are_exceptions_and_no_row_is_lost(lake: Lake) -> None:
    plan = _plan(lake, chunk_rows=100)
    dead = plan.exceptions.filter(pl.col("status") == "dead")
    counts = dict(dead.group_by("error_class").len().iter_rows())
    assert counts == {"MissingContentId": 2, "DuplicateContentId": 2, "UnknownRegion": 2}
    # A row without an id is located by the data file and row, relative to the lake.
    for loc in dead.filter(pl.col("content_id").is_null())["locator"].to_list():
        assert loc.startswith("backlog@") and "#row=" in loc
    # The first copy of a duplicated id is scored; the later copy is the dead letter.
    dup_ids = dead.filter(pl.col("error_class") == "DuplicateContentId")["content_id"].to_list()
    assert len(set(dup_ids)) == 2
    assert plan.units.rows == 422
    # Every row of the segment is exactly one of: scored, dead-lettered, skipped, outside.
    assert plan.count("score") + plan.count("dead") == 422
    assert sum(work for work, _, _ in plan.unit_work.values()) == 422


def test_units_partition_the_rows_and_the_job_key_is_stable(lake: Lake) -> None:
    a, b = _plan(lake, chunk_rows=50), _plan(lake, chunk_rows=50)
    assert a.job == b.job and len(a.units) == len(b.units) == 9
    assert a.exceptions.sort("unit", "source_row").equals(b.exceptions.sort("unit", "source_row"))
    covered = [(s.file.path, s.start, s.stop) for u in range(len(a.units)) for s in a.units.slices(u)]
    assert sum(stop - start for _, start, stop in covered) == 422
    assert all(stop - start <= 50 for _, start, stop in covered)
    assert _plan(lake, chunk_rows=60).job != a.job


def test_small_files_share_units_and_large_files_are_cut() -> None:
    files = [WorkFile(f"f{i:04d}.parquet", 1, 3) for i in range(1000)] + [WorkFile("big.parquet", 2, 1234)]
    units = Units(files, 500)
    assert units.rows == 4234 and len(units) == 9  # ceil(4234 / 500): not one unit per small file
    seen = [(s.file.path, s.start, s.stop) for slices in units for s in slices]
    assert sum(stop - start for _, start, stop in seen) == 4234
    assert units.unit_of(1000, 0) == 3000 // 500 and units.unit_of(1000, 1233) == 4233 // 500


def test_since_until_select_by_creation_time_and_limit_caps_the_new_work(lake: Lake) -> None:
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    plan = _plan(lake, since=since, until=until)
    backlog = pl.read_delta(lake.path("backlog"))
    window = (pl.col("created_at") >= since) & (pl.col("created_at") < until)
    assert plan.count("score") + plan.count("dead") == backlog.filter(window).height
    assert plan.count("out") == backlog.filter(~window).height
    limited = _plan(lake, limit=37)
    assert limited.count("score") + limited.count("dead") == 37
    assert limited.cutoff is not None and limited.job != _plan(lake).job


def test_the_log_tells_appends_from_compaction(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "t")
    for i in range(3):
        write_deltalake(uri, _rows([f"a{i}", f"b{i}"]), mode="append")
    DeltaTable(uri).optimize.compact()
    write_deltalake(uri, _rows(["c"]), mode="append")
    latest = DeltaTable(uri).version()
    assert [f.version for f in changed_files(uri, -1, latest)] == [0, 1, 2, 4]  # compaction's file skipped
    assert [f.rows for f in changed_files(uri, 3, latest)] == [1]
    assert len(snapshot_files(uri, latest)) == 2  # the compacted file and the last append


def test_partition_values_and_later_columns_are_restored(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "parted")
    first = _rows(["a", "b"]).drop_columns(["markets"]).append_column("day", pa.array(["2026-01-01"] * 2))
    write_deltalake(uri, first, partition_by=["day", "content_type"], mode="append")
    second = _rows(["c"]).append_column("day", pa.array(["2026-01-02"])).append_column("extra", pa.array([1]))
    write_deltalake(uri, second, partition_by=["day", "content_type"], mode="append", schema_mode="merge")
    from pipelines.backfill.files import table_schema

    schema = table_schema(uri, 1)
    files = changed_files(uri, -1, 1)
    table = read_table(uri, [Slice(f, 0, f.rows) for f in files], META, schema)
    got = table.sort_by("content_id").to_pylist()
    assert [r["content_type"] for r in got] == ["TEXT", "TEXT", "TEXT"]
    assert [r["markets"] for r in got] == [["DE"], ["DE"], ["FR"]]  # missing column -> [region]
    assert {r["source_file"].split("/")[0] for r in got} == {"day=2026-01-01", "day=2026-01-02"}


def test_content_id_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "ints")
    write_deltalake(uri, _rows(["a"]).set_column(0, "content_id", pa.array([1], pa.int64())))
    with pytest.raises(BadInputError, match=r"column 'content_id' has type int64, expected string"):
        _plan(open_lake(str(tmp_path / "lake")), backlog=uri)


def test_deletion_vectors_are_refused_in_one_line(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "dv")
    DeltaTable.create(uri, schema=_rows(["a"]).schema, configuration={"delta.enableDeletionVectors": "true"})
    write_deltalake(uri, _rows(["a"]), mode="append")
    with pytest.raises(BadInputError, match=r"deletion vectors") as err:
        _plan(open_lake(str(tmp_path / "lake")), backlog=uri)
    assert "\n" not in str(err.value)


def test_missing_log_versions_fall_back_to_a_full_scan(tmp_path: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    lake = open_lake(str(tmp_path / "lake"))
    uri = str(tmp_path / "old")
    for i in range(3):
        write_deltalake(uri, _rows([f"x{i}"]), mode="append")
    DeltaTable(uri).create_checkpoint()
    (Path(uri) / "_delta_log" / f"{1:020d}.json").unlink()  # what log retention does
    plan = _plan(lake, backlog=uri)
    assert plan.full_scan and plan.note is not None and "log retention" in plan.note
    assert plan.count("score") == 3


def test_missing_backlog_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"no Delta table there; run 'batchjobs generate' or point --backlog"):
        _plan(open_lake(str(tmp_path / "empty")))


def test_backlog_with_missing_and_mistyped_columns_names_them(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    uri = str(tmp_path / "theirs")
    write_deltalake(uri, pa.table({"content_id": ["a"], "created_at": ["yesterday"], "text": ["hi"]}))
    with pytest.raises(BadInputError) as err:
        _plan(open_lake(str(tmp_path / "lake")), backlog=uri)
    msg = str(err.value)
    assert "column 'created_at' has type string, expected timestamp[us, tz=UTC]" in msg
    assert "column 'region' is missing" in msg and "column 'language' is missing" in msg


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"limit": 0}, "--limit must be >= 1, got 0"),
        ({"chunk_rows": 0}, "--chunk-rows must be in [1, 1000000], got 0"),
        ({"since": datetime(2026, 1, 1)}, "--since must carry a time zone"),
        (
            {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
            "must be before --until",
        ),
    ],
)
def test_bad_config_values(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(BadConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BackfillConfig(lake=open_lake(str(tmp_path)), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "argument --limit: must be >= 1, got -1"),
        (["--since", "last tuesday"], "argument --since: 'last tuesday' is not an ISO 8601 date or time"),
        (["--chunk-rows", "x"], "argument --chunk-rows: 'x' is not an integer"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backfill", "--lake", str(tmp_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_missing_backlog_is_one_line_and_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backfill", "--lake", str(tmp_path / "lake"), "--model", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _rows(ids: list[str]) -> pa.Table:
    n = len(ids)
    region = ["DE"] * n if ids[0] != "c" else ["FR"] * n
    return pa.table(
        {
            "content_id": pa.array(ids, pa.string()),
            "created_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, TS),
            "region": pa.array(region, pa.string()),
            "markets": pa.array([[r] for r in region], pa.list_(pa.string())),
            "language": pa.array(["de"] * n, pa.string()),
            "content_type": pa.array(["TEXT"] * n, pa.string()),
            "text": pa.array(["hallo"] * n, pa.string()),
        }
    )
