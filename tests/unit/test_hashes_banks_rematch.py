"""Re-match rules on a hand-made lake (no Ray, no model): vPDQ for videos, allow-lists, markets, lifting.

``media_hashes`` and ``scores`` rows are written directly through the sink, as a backfill would.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from pipelines.errors import BadConfigError, BadInputError
from pipelines.hashes.banks import import_bank, retract_entries
from pipelines.hashes.rematch import RematchConfig, lift_retracted, rematch_bank
from pipelines.lake import Lake, open_lake
from pipelines.sink import commit_once

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def rand() -> bytes:
    return secrets.token_bytes(32)


def flip(h: bytes, bits: int) -> bytes:
    """``h`` with its first ``bits`` bits flipped."""
    n = int.from_bytes(h, "big") ^ (((1 << bits) - 1) << (256 - bits))
    return n.to_bytes(32, "big")


def write_media(lake: Lake, rows: list[tuple[str, int, bytes, int]], markets: dict[str, list[str] | None]) -> None:
    n = len(rows)
    commit_once(
        lake,
        "media_hashes",
        pa.table(
            {
                "content_id": [r[0] for r in rows],
                "frame": pa.array([r[1] for r in rows], pa.int32()),
                "pdq": pa.array([r[2] for r in rows], pa.binary(32)),
                "quality": pa.array([r[3] for r in rows], pa.int32()),
                "run_id": ["t"] * n,
                "source_version": [0] * n,
                "hashed_at": pa.array([NOW] * n, pa.timestamp("us", tz="UTC")),
            }
        ),
        app_id="test/media",
    )
    ids = list(markets)
    scores = pl.DataFrame(
        {
            "content_id": ids,
            "policy_id": ["child_safety"] * len(ids),
            "score": [0.1] * len(ids),
            "run_id": ["r"] * len(ids),
            "model_name": ["m"] * len(ids),
            "model_version": ["1"] * len(ids),
            "source_version": [0] * len(ids),
            "scored_at": [NOW] * len(ids),
            "created_at": [NOW] * len(ids),
            "region": ["DE"] * len(ids),
            "markets": [markets[c] for c in ids],
            "language": ["en"] * len(ids),
            "content_type": ["IMAGE"] * len(ids),
            "content_sha256": ["x"] * len(ids),
            "chunk_id": [0] * len(ids),
        },
        schema_overrides={"score": pl.Float32, "markets": pl.List(pl.String)},
    )
    commit_once(lake, "scores", scores.to_arrow(), app_id="test/scores")


def bank_file(path: Path, entries: dict[str, bytes]) -> str:
    path.write_text("id,pdq\n" + "".join(f"{k},{h.hex()}\n" for k, h in entries.items()))
    return str(path)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return open_lake(str(tmp_path / "lake"))


def test_video_rule_allow_list_markets_and_lift(lake: Lake, tmp_path: Path) -> None:
    known, other, meme = rand(), rand(), rand()
    rows = [
        ("img-hit", -1, flip(known, 10), 90),  # an image within 31 bits
        ("img-far", -1, flip(known, 40), 90),  # 40 bits: no match
        ("img-lowq", -1, known, 30),  # quality < 50: never matched
        ("meme", -1, flip(meme, 3), 90),  # matches the bank AND the allow-list
        *[("vid-4of5", i, flip(known, 5) if i < 4 else rand(), 80) for i in range(5)],  # 80%: match
        *[("vid-3of5", i, flip(known, 5) if i < 3 else rand(), 80) for i in range(5)],  # 60%: no match
        *[("vid-lowq", i, flip(known, 5) if i < 2 else rand(), 80 if i < 2 else 10) for i in range(5)],  # 2 of 2 good
        ("unscored", -1, known, 90),  # matches, but no scores row: no markets to decide in
    ]
    markets = {c: None for c, *_ in rows if c != "unscored"}
    markets["img-hit"] = ["FR", "DE", "FR"]
    write_media(lake, rows, markets)
    import_bank(lake, "known_csam", bank_file(tmp_path / "b.csv", {"k1": known, "k2": other, "k3": meme}))
    import_bank(lake, "csam_allow", bank_file(tmp_path / "a.csv", {"m1": meme}))
    pack_text = (Path(__file__).parents[2] / "batchjobs" / "packs" / "default.yaml").read_text()
    pack_text = pack_text.replace('version: "1.2.0"', 'version: "1.2.9"').replace(
        "{bank: known_csam, threshold: 31,", "{bank: known_csam, allow: [csam_allow], threshold: 31,"
    )
    (tmp_path / "pack.yaml").write_text(pack_text)

    result = rematch_bank(RematchConfig(lake=lake, bank="known_csam", policy=str(tmp_path / "pack.yaml")))
    (run,) = result.bindings
    assert (run.items, run.allowed, run.no_metadata) == (5, 1, 1)
    decisions = pl.read_delta(lake.path("decisions"))
    got = sorted(decisions.select("content_id", "market").rows())
    assert got == [("img-hit", "DE"), ("img-hit", "FR"), ("vid-4of5", "DE"), ("vid-lowq", "DE")]
    hit = decisions.filter(pl.col("content_id") == "img-hit")
    assert set(hit["model_name"]) == {"pdq:k1:10"} and set(hit["model_version"]) == {"hash:known_csam@1"}
    assert set(decisions["policy_version"]) == {"trustbatch-default@1.2.9"} and set(decisions["source"]) == {
        "hash_match"
    }
    assert result.newly.sort("market").rows() == [
        ("DE", "child_safety", "remove", 3),
        ("FR", "child_safety", "remove", 1),
    ]

    # Again: nothing new. Then retract k1: every match relied on it, so each is lifted (action none).
    rematch_bank(RematchConfig(lake=lake, bank="known_csam", policy=str(tmp_path / "pack.yaml")))
    assert pl.read_delta(lake.path("decisions")).height == 4
    retract_entries(lake, "known_csam", "k1")
    assert lift_retracted(lake, "known_csam") == 4
    assert lift_retracted(lake, "known_csam") == 0  # exactly once
    lifted = pl.read_delta(lake.path("decisions")).filter(pl.col("model_name") == "pdq:retracted")
    assert sorted(lifted.select("content_id", "market").rows()) == got
    assert set(lifted["action"]) == {"none"} and set(lifted["model_version"]) == {"hash:known_csam@2"}


def test_errors_are_one_line(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="bank known_csam is empty"):
        rematch_bank(RematchConfig(lake=lake, bank="known_csam"))
    import_bank(lake, "known_csam", bank_file(tmp_path / "b.csv", {"k1": rand()}))
    with pytest.raises(BadInputError, match="no media hashes yet"):
        rematch_bank(RematchConfig(lake=lake, bank="known_csam"))
    with pytest.raises(BadConfigError, match="binds no policy to bank other_bank"):
        rematch_bank(RematchConfig(lake=lake, bank="other_bank"))
