"""Backfill planning and its user-facing errors, without Ray."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from batchjobs.cli import main
from pipelines.scoring.keys import chunk_of
from pipelines.backfill.config import BackfillConfig
from pipelines.backfill.plan import make_plan
from pipelines.errors import BadConfigError, BadInputError
from pipelines.generate import GenerateConfig, generate_backlog
from pipelines.lake import Lake, open_lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = open_lake(str(tmp_path_factory.mktemp("plan") / "lake"))
    generate_backlog(lake, GenerateConfig(rows=400, seed=2, bad_rows=22))
    return lake


def _plan(lake: Lake, **kw: object) -> object:
    return make_plan(BackfillConfig(lake=lake, **kw), model_version="1", policy_version="p@1")  # type: ignore[arg-type]


def test_metadata_problems_are_dead_lettered_at_plan_time(lake: Lake) -> None:
    plan = _plan(lake, chunk_rows=100)
    kinds = plan.invalid.group_by("error_class").len()  # type: ignore[attr-defined]
    counts = dict(zip(kinds["error_class"].to_list(), kinds["len"].to_list(), strict=True))
    assert counts == {"MissingContentId": 2, "DuplicateContentId": 2, "UnknownRegion": 2}
    null_ids = plan.invalid.filter(pl.col("content_id").is_null())  # type: ignore[attr-defined]
    # A row without an id is located by table, version and row, relative to the lake.
    assert all(loc.startswith("backlog@v") and "#row=" in loc for loc in null_ids["locator"].to_list())
    # Each duplicated id is scored once: the planner counts both copies for the reader.
    dup = plan.invalid.filter(pl.col("error_class") == "DuplicateContentId")["content_id"].to_list()  # type: ignore[attr-defined]
    copies = plan.to_score.filter(pl.col("content_id").is_in(dup))["copies"].to_list()  # type: ignore[attr-defined]
    assert copies == [2, 2]
    assert plan.selected == 422  # type: ignore[attr-defined]
    # Every selected row is either planned for scoring or refused: none is lost.
    assert plan.to_score.height + plan.invalid.height == 422  # type: ignore[attr-defined]


def test_chunks_depend_on_ids_not_layout_and_the_job_key_is_stable(lake: Lake) -> None:
    a, b = _plan(lake, chunk_rows=50), _plan(lake, chunk_rows=50)
    assert a.job == b.job and a.n_chunks == b.n_chunks == 9  # type: ignore[attr-defined]
    assert a.to_score.equals(b.to_score)  # type: ignore[attr-defined]
    for cid, chunk in a.to_score.head(20).select("content_id", "chunk_id").rows():  # type: ignore[attr-defined]
        assert chunk == chunk_of(cid, a.n_chunks)  # type: ignore[attr-defined]
    assert _plan(lake, chunk_rows=60).job != a.job  # type: ignore[attr-defined]
    assert sum(a.expected_rows().values()) == a.to_score["copies"].sum()  # type: ignore[attr-defined]


def test_since_until_and_limit_select_by_creation_time(lake: Lake) -> None:
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    plan = _plan(lake, since=since, until=until)
    backlog = pl.read_delta(lake.path("backlog"))
    want = backlog.filter((pl.col("created_at") >= since) & (pl.col("created_at") < until)).height
    assert plan.selected == want  # type: ignore[attr-defined]
    assert _plan(lake, limit=37).selected == 37  # type: ignore[attr-defined]


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
