"""Re-matching stored media hashes when a bank grows: exact, media-free, exactly once, decisions of hash_match.

The lake is generated with known material (``GenerateConfig.known``: near duplicates of known
images and benign look-alikes, ground truth by family) and backfilled with the tiny model. When
the backfill does not fill ``media_hashes`` itself, this test writes those rows by hashing the
backlog's images and keyframes with ``pipelines.hashes.pdq``, as the backfill does (frame -1 for an
item's image, 0.. for keyframes).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from batchjobs import cli
from pipelines.current import current_decisions
from pipelines.generate import GenerateConfig, generate_backlog
from pipelines.generate.known_rows import bank_seed
from pipelines.hashes import from_arrow, hash_bytes, read_bank_csv
from pipelines.lake import Lake, open_lake, table_exists
from pipelines.model import TinyModel, register_model
from pipelines.sink import commit_once
from tests.integration.helpers import TINY_URI, copy_lake, read, run_ok

KNOWN = 40  # known images per bank: 200 copies and 80 look-alikes each


def _hash_media(lake: Lake) -> None:
    rows: list[tuple[str, int, bytes, int]] = []
    backlog = pl.read_delta(lake.path("backlog")).filter(pl.col("content_id").is_not_null())
    for cid, image, frames in backlog.select("content_id", "image", "frames").iter_rows():
        for frame, data in [(-1, image), *enumerate(frames or [])]:
            if data is None:
                continue
            try:
                h = hash_bytes(data)
            except Exception:  # undecodable media: the backfill dead-letters such rows
                continue
            rows.append((cid, frame, h.hash, h.quality))
    table = pa.table(
        {
            "content_id": [r[0] for r in rows],
            "frame": pa.array([r[1] for r in rows], pa.int32()),
            "pdq": pa.array([r[2] for r in rows], pa.binary(32)),
            "quality": pa.array([r[3] for r in rows], pa.int32()),
            "run_id": ["test-hashes"] * len(rows),
            "source_version": [0] * len(rows),
            "hashed_at": pa.array([datetime.now(UTC)] * len(rows), pa.timestamp("us", tz="UTC")),
        }
    )
    commit_once(lake, "media_hashes", table, app_id="test-hashes/media_hashes")


@pytest.fixture(scope="module")
def backfilled(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = open_lake(str(tmp_path_factory.mktemp("hashes") / "lake"))
    generate_backlog(lake, GenerateConfig(rows=120, seed=9, known=KNOWN, images_per_motif=8))
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)
    run_ok("backfill", "--lake", lake.root, "--model", TINY_URI, ray_address=ray_cluster)
    if not table_exists(lake.path("media_hashes")):
        _hash_media(lake)
    return lake


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _half_bank(src: str, dst: Path, part: int) -> str:
    """The first (part 0) or second (part 1) half of a bank file's entries, as a bank file."""
    entries = read_bank_csv(src).entries
    half = entries[: len(entries) // 2] if part == 0 else entries[len(entries) // 2 :]
    dst.write_text("id,pdq,source\n" + "".join(f"{e.external_id},{e.pdq.hex()},generated\n" for e in half))
    return str(dst)


def _expected(lake: Lake, bank_file: str, threshold: int = 31) -> set[str]:
    """Items an independent brute force says match (images: their hash; every stored frame here is an image)."""
    media = read(lake, "media_hashes").filter(pl.col("quality") >= 50)
    stored = np.unpackbits(from_arrow(media["pdq"].to_arrow()), axis=1)
    entries = np.unpackbits(np.frombuffer(b"".join(e.pdq for e in read_bank_csv(bank_file).entries), np.uint8)
                            .reshape(-1, 32), axis=1)  # fmt: skip
    dist = (stored[:, None, :] != entries[None, :, :]).sum(axis=2)
    hit = (dist <= threshold).any(axis=1)
    # Videos would need the 80% rule; the matched items of this lake are images (checked below).
    return set(media.filter(pl.Series(hit))["content_id"].to_list())


def test_rematch_new_entries_exactly_once_without_media(
    backfilled: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = copy_lake(backfilled, tmp_path / "lake")
    bank_file = str(Path(lake.root) / "known_banks" / "known_csam.csv")
    first, second = _half_bank(bank_file, tmp_path / "a.csv", 0), _half_bank(bank_file, tmp_path / "b.csv", 1)

    _cli(capsys, "hashes", "import", "--lake", lake.root, "--bank", "known_csam", first)
    out = _cli(capsys, "sweep", "--lake", lake.root, "--hashes", "known_csam")
    assert "all live entries: 20" in out
    decisions = read(lake, "decisions").filter(pl.col("source") == "hash_match")
    assert set(decisions["content_id"]) == _expected(lake, first)
    assert set(decisions["model_version"]) == {"hash:known_csam@1"}

    # The bank grows; the backlog's data files go away (tests run as root: move them, not chmod).
    _cli(capsys, "hashes", "import", "--lake", lake.root, "--bank", "known_csam", bank_file)
    shutil.move(lake.path("backlog"), Path(lake.root) / "backlog.away")
    before = read(lake, "decisions")
    out = _cli(capsys, "sweep", "--lake", lake.root, "--hashes", "known_csam")
    assert "entries after v1: 20" in out
    after = read(lake, "decisions")
    new = after.filter(pl.col("model_version") == "hash:known_csam@2")
    assert after.height == before.height + new.height
    # Exactly the items whose media match the new entries (and were not matched already).
    assert set(new["content_id"]) == _expected(lake, second) - _expected(lake, first)
    assert new.height > 0 and set(new["policy_id"]) == {"child_safety"}
    assert set(new["source"]) == {"hash_match"} and set(new["action"]) == {"remove"}
    assert set(new["automated"]) == {"FULLY"} and new["score"].null_count() == new.height
    assert new["model_name"].str.contains(r"^pdq:known-\d+-\d+:\d+$").all()
    distances = new["model_name"].str.extract(r":(\d+)$").cast(pl.Int32)
    assert int(distances.max()) <= 31  # type: ignore[arg-type]
    # One row per (content_id, market, policy_id), for each item's markets.
    markets = read(lake, "scores").group_by("content_id").agg(pl.col("markets").first())
    per_item = new.group_by("content_id").agg(pl.col("market").sort()).join(markets, on="content_id")
    assert all(sorted(set(m)) == got for got, m in per_item.select("market", "markets").rows())
    assert new.select("content_id", "market", "policy_id").is_unique().all()

    # Run again: nothing added.
    _cli(capsys, "sweep", "--lake", lake.root, "--hashes", "known_csam")
    assert read(lake, "decisions").height == after.height

    # The current decision of a matched key is the hash match, over the model's decision.
    current = current_decisions(pl.scan_delta(lake.path("decisions"))).collect()
    key = new.select("content_id", "market", "policy_id").head(5)
    got = current.join(key, on=["content_id", "market", "policy_id"])
    assert got.height == 5 and set(got["source"]) == {"hash_match"}
    assert after.filter(pl.col("source") == "model").join(key, on=["content_id", "market", "policy_id"]).height == 5

    report = json.loads(Path(out.split("report:")[-1].strip()).read_text()) if "report:" in out else None
    assert report is not None and "pdq" not in json.dumps(report["newly_matched"])


def test_recall_lookalikes_terror_threshold_and_retraction(
    backfilled: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = copy_lake(backfilled, tmp_path / "lake")
    for bank in ("known_csam", "known_terror"):
        _cli(capsys, "hashes", "import", "--lake", lake.root, "--bank", bank,
             str(Path(lake.root) / "known_banks" / f"{bank}.csv"))  # fmt: skip
        _cli(capsys, "sweep", "--lake", lake.root, "--hashes", bank)
    matched = read(lake, "decisions").filter(pl.col("source") == "hash_match")
    truth = read(lake, "ground_truth").filter(pl.col("policy_id") == "child_safety").select("content_id", "family")
    got = truth.join(matched.select("content_id", "policy_id").unique(), on="content_id", how="left")
    per = (
        got.filter(pl.col("family").str.contains("_copy/|lookalike"))
        .group_by("family")
        .agg(pl.len().alias("n"), pl.col("policy_id").is_not_null().sum().alias("matched"))
        .with_columns((pl.col("matched") / pl.col("n")).alias("recall"))
        .sort("family")
    )
    print(per)  # the per-transform figures (docs/hashes.md)
    recall = dict(per.select("family", "recall").rows())
    # Re-encoded and resized copies together, both banks (160 copies): >= 0.99 at distance 31. With seed 9
    # one 50% resize of a known_terror image lies 32 bits from its original (a real PDQ miss), so a
    # per-bank, per-transform bound would be 0.975 here.
    easy = per.filter(pl.col("family").str.contains("_copy/(reencode|resize)$"))
    assert easy["n"].sum() == 4 * KNOWN and easy["matched"].sum() / easy["n"].sum() >= 0.99
    assert recall["benign/known_lookalike"] == 0.0
    # No benign row of the ordinary backlog matched either, and each bank decides its own policy.
    assert got.filter(pl.col("policy_id").is_not_null())["family"].str.contains("_copy/").all()
    by_policy = (
        matched.join(truth, on="content_id")
        .group_by("policy_id")
        .agg(pl.col("family").str.extract(r"^(known_\w+?)_copy").unique())
    )
    assert dict(by_policy.rows()) == {"child_safety": ["known_csam"], "terrorist_content": ["known_terror"]}

    # A pack that changes the bank's threshold re-matches the bank in full.
    text = (Path(__file__).parents[2] / "batchjobs" / "packs" / "default.yaml").read_text()
    text = text.replace('version: "1.2.0"', 'version: "1.2.1"').replace(
        "{bank: known_terror, threshold: 31", "{bank: known_terror, threshold: 20"
    )
    (tmp_path / "strict.yaml").write_text(text)
    out = _cli(
        capsys, "sweep", "--lake", lake.root, "--hashes", "known_terror", "--policy", str(tmp_path / "strict.yaml")
    )
    assert "terrorist_content (distance <= 20, all live entries: 40)" in out

    # Retraction lifts the matches that relied only on the retracted entries; model decisions stand.
    terror = matched.filter(pl.col("policy_id") == "terrorist_content")
    item = terror["content_id"].sort()[0]  # <tag>-known-known_terror-<n>-<transform>
    n = item.split("-known-known_terror-")[1].split("-")[0]
    known_id = f"known-{bank_seed(9, 'known_terror')}-{int(n)}"
    models_before = read(lake, "decisions").filter(pl.col("source") == "model").height
    out = _cli(capsys, "hashes", "retract", "--lake", lake.root, "--bank", "known_terror", known_id)
    lifted = read(lake, "decisions").filter(pl.col("model_name") == "pdq:retracted")
    copies = {c for c in terror["content_id"] if f"-known-known_terror-{n}-" in c}
    assert set(lifted["content_id"]) == copies and set(lifted["action"]) == {"none"}
    assert f"lifted {lifted.height} hash-match decisions" in out
    assert read(lake, "decisions").filter(pl.col("source") == "model").height == models_before
