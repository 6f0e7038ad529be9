"""The backlog generator: schemas, realism properties, labels, bad rows, determinism, CLI errors."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

import batchjobs.cli as cli
from pipelines.errors import BadConfigError
from pipelines.generate import (
    BAD_ROW_KINDS,
    BASE_RATES,
    UNTAGGED_KINDS,
    GenerateConfig,
    GenerateSummary,
    bad_row_kind,
    generate_backlog,
)
from pipelines.heads import GROUND_TRUTH_TARGETS
from pipelines.lake import open_lake
from pipelines.markets import ALL_MARKETS, transfer_zone
from pipelines.schema import BACKLOG, GROUND_TRUTH

ROWS = 5000
BAD = 2 * len(BAD_ROW_KINDS)


class Lake:
    """One generated lake read back through polars (never DeltaTable.to_pyarrow_table)."""

    def __init__(self, root: Path, summary: GenerateSummary) -> None:
        self.root = root
        self.summary = summary
        self.backlog = pl.read_delta(str(root / "backlog"))
        self.truth = pl.read_delta(str(root / "ground_truth"))
        is_bad = pl.col("content_id").is_null() | pl.col("content_id").str.starts_with("bad-")
        # Duplicates are exact copies of good rows: keep one copy of each id among good rows.
        self.good = self.backlog.filter(~is_bad).unique(subset="content_id", keep="first", maintain_order=True)
        self.bad = self.backlog.filter(is_bad)


def _make(root: Path, **kw: object) -> Lake:
    summary = generate_backlog(open_lake(str(root)), GenerateConfig(**kw))  # type: ignore[arg-type]
    return Lake(root, summary)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return _make(tmp_path_factory.mktemp("gen") / "lake", rows=ROWS, seed=7, bad_rows=BAD, batch_size=2000)


@pytest.fixture(scope="module")
def enriched(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return _make(tmp_path_factory.mktemp("gen") / "lake", rows=2000, seed=7, enrich=5.0)


@pytest.fixture
def only_generate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Other sub-commands belong to other modules (and may be mid-flight): test ours alone.
    monkeypatch.setattr(cli, "COMMANDS", ("generate",))
    yield


def _polars_schema(schema: object) -> pl.Schema:
    import pyarrow as pa

    assert isinstance(schema, pa.Schema)
    return pl.from_arrow(schema.empty_table()).schema  # type: ignore[union-attr]


# --- schemas and volumes ------------------------------------------------------------------
def test_tables_match_schemas(lake: Lake) -> None:
    assert lake.backlog.schema == _polars_schema(BACKLOG)
    assert lake.truth.schema == _polars_schema(GROUND_TRUTH)
    assert lake.backlog.height == ROWS + BAD
    assert lake.summary.rows == ROWS and lake.summary.bad_rows == BAD


def test_ground_truth_has_every_target_for_every_good_row(lake: Lake) -> None:
    per_id = lake.truth.group_by("content_id").agg(pl.col("policy_id").sort())
    assert per_id.height == ROWS
    assert set(per_id["content_id"]) == set(lake.good["content_id"])
    assert all(sorted(GROUND_TRUTH_TARGETS) == list(p) for p in per_id["policy_id"])
    assert set(lake.truth["signal"]) <= {"text", "image", "both", "none"}
    assert set(lake.truth["split"]) == {"train", "heldout"}
    pos = lake.truth.filter(pl.col("label"))
    assert (pos["signal"] != "none").all()
    assert (lake.truth.filter(~pl.col("label"))["signal"] == "none").all()


# --- realism ------------------------------------------------------------------------------
def test_languages(lake: Lake) -> None:
    counts = lake.good["language"].value_counts().sort("count", descending=True)
    assert counts.height >= 10
    assert all(re.fullmatch(r"[a-z]{2}", c) for c in counts["language"])
    assert counts["language"][0] == "en"
    assert 0.33 < counts["count"][0] / lake.good.height < 0.48


@pytest.mark.parametrize(
    ("script", "pattern"),
    [
        ("Arabic", "[\u0600-\u06ff]"),
        ("Devanagari", "[\u0900-\u097f]"),
        ("CJK", "[\u4e00-\u9fff]"),
        ("Cyrillic", "[\u0400-\u04ff]"),
        ("Thai", "[\u0e00-\u0e7f]"),
    ],
)
def test_non_latin_scripts(lake: Lake, script: str, pattern: str) -> None:
    assert lake.good.filter(pl.col("text").str.contains(pattern)).height > 20, script


def test_regions(lake: Lake) -> None:
    regions = set(lake.good["region"])
    assert regions == set(ALL_MARKETS)  # all 36 appear at this size
    assert "GR" in regions and "EL" not in regions
    assert set(lake.good["markets"].explode()) <= set(ALL_MARKETS)
    assert set(lake.bad["region"]) - set(ALL_MARKETS) == {"XX"}


def test_content_types_and_media(lake: Lake) -> None:
    g = lake.good
    assert set(g["content_type"]) == {"TEXT", "IMAGE", "VIDEO"}
    text = g.filter(pl.col("content_type") == "TEXT")
    assert text["text"].null_count() == 0 and text["image"].null_count() == text.height
    image = g.filter(pl.col("content_type") == "IMAGE")
    assert image["image"].null_count() == 0 and image["frames"].null_count() == image.height
    video = g.filter(pl.col("content_type") == "VIDEO")
    n_frames = video["frames"].list.len()
    assert n_frames.min() == 2 and n_frames.max() == 8  # type: ignore[operator]


def test_every_good_image_decodes(lake: Lake) -> None:
    blobs = [b for b in lake.good["image"] if b is not None]
    blobs += [b for frames in lake.good["frames"] if frames is not None for b in frames]
    assert len(blobs) > 2000
    sizes = set()
    formats = set()
    for b in blobs:
        with Image.open(io.BytesIO(b)) as im:
            im.load()
            sizes.add(max(im.size))
            formats.add(im.format)
    assert formats == {"PNG", "JPEG"}
    assert min(sizes) >= 64 and max(sizes) <= 160


def test_text_lengths_are_heavy_tailed(lake: Lake) -> None:
    spaced = lake.good.filter((pl.col("content_type") == "TEXT") & ~pl.col("language").is_in(["zh", "ja", "th"]))
    words = spaced["text"].str.split(" ").list.len()
    median, p99, top = words.median(), words.quantile(0.99), words.max()
    assert words.min() <= 5  # type: ignore[operator]
    assert median is not None and p99 is not None and top is not None
    assert median < 40 and top >= 200 and p99 > 4 * median  # type: ignore[operator]


def test_created_at_spread(lake: Lake) -> None:
    ts = lake.good["created_at"]
    assert str(ts.dtype.time_zone) == "UTC"  # type: ignore[attr-defined]
    assert (ts.max() - ts.min()).days > 60  # type: ignore[operator]


def test_multi_market_minority(lake: Lake) -> None:
    n = lake.good["markets"].list.len()
    share = (n > 1).mean()
    assert share is not None and 0.08 < share < 0.2
    assert (lake.good["markets"].list.first() == lake.good["region"]).all()


# --- labels -------------------------------------------------------------------------------
def _prevalence(lk: Lake) -> dict[str, float]:
    pos = lk.truth.filter(pl.col("label")).group_by("policy_id").len()
    got = dict(zip(pos["policy_id"], pos["len"], strict=True))
    return {t: got.get(t, 0) / lk.summary.rows for t in GROUND_TRUTH_TARGETS}


def test_prevalence_is_realistic(lake: Lake) -> None:
    prev = _prevalence(lake)
    for target, p in prev.items():
        assert 0.0005 <= p <= 0.06, (target, p)  # 0.1%-5% with sampling tolerance
    assert prev == lake.summary.prevalence()


def test_enrich_raises_prevalence(lake: Lake, enriched: Lake) -> None:
    base, rich = _prevalence(lake), _prevalence(enriched)
    for target in GROUND_TRUTH_TARGETS:
        assert rich[target] > 2 * base[target], target
        assert rich[target] <= 0.30 + 0.03
    for head, p in BASE_RATES.items():
        assert rich[head] == pytest.approx(5 * p, rel=0.5)


def test_signals_are_where_they_claim(lake: Lake) -> None:
    pos = lake.truth.filter(pl.col("label")).join(lake.good, on="content_id")
    assert set(pos.filter(pl.col("policy_id") == "child_safety")["signal"]) == {"both"}
    assert {"text", "image"} <= set(pos.filter(pl.col("policy_id") == "violence")["signal"])
    assert {"text", "image"} <= set(pos.filter(pl.col("policy_id") == "personal_data")["signal"])
    for pid in ("scams", "hate", "misinformation", "self_harm"):
        assert set(pos.filter(pl.col("policy_id") == pid)["signal"]) == {"text"}
    text_sig = pos.filter(pl.col("signal").is_in(["text", "both"]))
    assert text_sig["text"].null_count() == 0
    media = pos.filter(pl.col("signal").is_in(["image", "both"]))
    assert (media["image"].is_not_null() | media["frames"].is_not_null()).all()


def test_cross_border_is_personal_data_outside_transfer_zone(lake: Lake) -> None:
    wide = lake.truth.filter(pl.col("policy_id").is_in(["personal_data", "cross_border_data"])).pivot(
        on="policy_id", index="content_id", values="label"
    )
    rows = wide.join(lake.good.select("content_id", "region", "markets"), on="content_id")
    for r in rows.iter_rows(named=True):
        outside = any(m not in transfer_zone(r["region"]) for m in r["markets"])
        assert r["cross_border_data"] == (r["personal_data"] and outside)
    assert rows["cross_border_data"].sum() > 0


def test_families_split_disjoint_per_policy(lake: Lake) -> None:
    pos = lake.truth.filter(pl.col("label"))
    for pid in GROUND_TRUTH_TARGETS:
        rows = pos.filter(pl.col("policy_id") == pid)
        train = set(rows.filter(pl.col("split") == "train")["family"])
        held = set(rows.filter(pl.col("split") == "heldout")["family"])
        assert not train & held, pid
        assert train, pid
        if rows.height >= 40:
            assert held, pid
    # Benign rows are split by hash: both splits, roughly 70/30.
    benign = lake.truth.filter(pl.col("family").str.starts_with("benign/") & (pl.col("policy_id") == "hate"))
    share = (benign["split"] == "heldout").mean()
    assert share is not None and 0.25 < share < 0.35


def test_non_english_positives_exist(lake: Lake) -> None:
    pos = lake.truth.filter(pl.col("label") & (pl.col("signal") == "text")).join(lake.good, on="content_id")
    assert (pos["language"] != "en").sum() > 20


# --- bad rows -----------------------------------------------------------------------------
def test_every_bad_row_kind_present(lake: Lake) -> None:
    kinds = {bad_row_kind(c) for c in lake.bad["content_id"] if c is not None}
    assert kinds == set(BAD_ROW_KINDS) - UNTAGGED_KINDS
    assert lake.summary.bad_row_kinds == dict.fromkeys(BAD_ROW_KINDS, 2)
    assert lake.backlog["content_id"].null_count() == 2
    dup = lake.backlog.filter(pl.col("content_id").is_not_null()).group_by("content_id").len()
    assert dup.filter(pl.col("len") > 1).height == 2
    assert lake.truth.filter(pl.col("content_id").str.starts_with("bad-")).height == 0


def _bad(lake: Lake, kind: str) -> pl.DataFrame:
    return lake.bad.filter(pl.col("content_id").str.starts_with(f"bad-{kind}-"))


def test_bad_rows_are_bad_the_way_they_say(lake: Lake) -> None:
    assert (_bad(lake, "empty_text")["text"] == "").all()
    assert (_bad(lake, "oversized_text")["text"].str.len_bytes() > 1_000_000).all()
    assert (_bad(lake, "empty_image")["image"].bin.size() == 0).all()
    assert set(_bad(lake, "unknown_region")["region"]) == {"XX"}
    invalid = _bad(lake, "invalid_utf8")["text"][0]
    assert not re.search(r"\w{2}", invalid)
    for kind in ("corrupt_image", "truncated_image", "decompression_bomb"):
        for blob in _bad(lake, kind)["image"]:
            with pytest.raises((OSError, Image.DecompressionBombError)), Image.open(io.BytesIO(blob)) as im:
                im.load()
    for frames in _bad(lake, "broken_frame")["frames"]:
        failures = 0
        for blob in frames:
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    im.load()
            except OSError:
                failures += 1
        assert failures == 1


def test_more_bad_rows_than_good_rows(tmp_path: Path) -> None:
    # 520 bad rows overflow one batch's bad-row budget: the second batch has no good rows.
    lk = _make(tmp_path / "lake", rows=2, bad_rows=520, images_per_motif=4)
    assert lk.backlog.height == 522 and lk.truth.height == 2 * len(GROUND_TRUTH_TARGETS)
    assert sum(lk.summary.bad_row_kinds.values()) == 520
    dup = lk.backlog.filter(pl.col("content_id").is_not_null()).group_by("content_id").len()
    assert dup["len"].sum() - dup.height == lk.summary.bad_row_kinds["duplicate_content_id"]


def test_bad_row_kind_of_ids() -> None:
    assert bad_row_kind(None) is None
    assert bad_row_kind("0123abcd-0000000001") is None
    assert bad_row_kind("bad-corrupt_image-0123abcd-00000001") == "corrupt_image"


# --- determinism --------------------------------------------------------------------------
def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    kw = {"rows": 600, "bad_rows": len(BAD_ROW_KINDS), "batch_size": 250, "images_per_motif": 16}
    a = _make(tmp_path / "a", seed=3, **kw)
    b = _make(tmp_path / "b", seed=3, **kw)
    c = _make(tmp_path / "c", seed=4, **kw)

    # Same rows, byte for byte; Delta does not promise the order in which files are read back.
    def rows(lk: Lake) -> tuple[pl.DataFrame, pl.DataFrame]:
        backlog = lk.backlog.sort(["content_id", "created_at", "text"], nulls_last=True)
        return backlog, lk.truth.sort(["content_id", "policy_id"])

    (ab, at), (bb, bt), (cb, _) = rows(a), rows(b), rows(c)
    assert ab.equals(bb, null_equal=True)
    assert at.equals(bt)
    assert not ab.equals(cb, null_equal=True)
    assert not set(a.good["content_id"]) & set(c.good["content_id"])


def test_rerun_after_a_crash_commits_everything_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.generate.writer as writer

    root = tmp_path / "lake"
    config = GenerateConfig(rows=300, seed=5, bad_rows=3, images_per_motif=8)
    real = writer.backlog_batch

    def crash(*_a: object, **_k: object) -> object:
        raise RuntimeError("killed while writing the backlog")

    monkeypatch.setattr(writer, "backlog_batch", crash)
    with pytest.raises(Exception, match="killed while writing"):  # deltalake wraps it in a DeltaError
        generate_backlog(open_lake(str(root)), config)
    monkeypatch.setattr(writer, "backlog_batch", real)
    summary = generate_backlog(open_lake(str(root)), config)  # same options: resumes
    assert pl.read_delta(str(root / "backlog")).height == 303
    assert pl.read_delta(str(root / "ground_truth")).height == 300 * len(GROUND_TRUTH_TARGETS)
    assert sum(summary.positives.values()) > 0
    other = GenerateConfig(rows=300, seed=6, images_per_motif=8)
    with pytest.raises(BadConfigError, match="pick a new --lake"):
        generate_backlog(open_lake(str(root)), other)


# --- config and CLI -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "field"),
    [({"rows": 0}, "rows"), ({"rows": -1}, "rows"), ({"rows": 5, "bad_rows": -1}, "bad_rows"),
     ({"rows": 5, "enrich": 0.5}, "enrich"), ({"rows": 5, "seed": -2}, "seed")],
)  # fmt: skip
def test_config_validation(kw: dict[str, object], field: str) -> None:
    with pytest.raises(BadConfigError, match=field):
        GenerateConfig(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ["--rows", "-1"],
        ["--rows", "0"],
        ["--rows", "10", "--bad-rows", "-3"],
        ["--rows", "10", "--enrich", "0.5"],
        ["--rows", "ten"],
        ["--rows", "10", "--colour", "blue"],
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], only_generate: None
) -> None:
    try:
        code = cli.main(["generate", "--lake", str(tmp_path / "lake"), *argv])
    except SystemExit as exc:  # argparse usage errors leave through SystemExit
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "lake" / "backlog").exists()


def test_cli_unwritable_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str], only_generate: None) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["generate", "--lake", str(blocker / "lake"), "--rows", "10"]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--lake" in err


def test_cli_generates_then_refuses_existing_backlog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, only_generate: None
) -> None:
    import batchjobs.commands.generate as command

    monkeypatch.setattr(command, "PROGRESS_MIN_ROWS", 100)
    root = str(tmp_path / "lake")
    assert cli.main(["generate", "--lake", root, "--rows", "300", "--bad-rows", "11", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "300 rows + 11 bad rows" in out and "positives:" in out and "backlog:" in out
    assert "311/311 rows written" in err
    before = pl.read_delta(f"{root}/backlog").height
    assert cli.main(["generate", "--lake", root, "--rows", "300"]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pick a new --lake" in err
    assert pl.read_delta(f"{root}/backlog").height == before == 311
