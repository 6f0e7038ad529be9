"""Measured robustness on generated known media: re-encoded and resized copies match, look-alikes do not."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image

from pipelines.generate.known_media import TRANSFORMS, make_known_media, near_duplicate
from pipelines.hashes.robustness import main, measure


@pytest.fixture(scope="module")
def result():
    # 40 known images x 5 transforms x 2 copies, 300 look-alikes: about 5 s here.
    return measure(make_known_media(11, n_known=40, per_transform=2, n_look_alikes=300))


def test_reencoded_and_resized_copies_match(result) -> None:
    rows = {r.transform: r for r in result.rows}
    assert set(TRANSFORMS) <= set(rows)
    assert result.min_known_quality >= 50
    for name in ("reencode", "resize"):
        assert rows[name].recall_plain >= 0.99, rows[name]
    assert rows["mirror"].recall_plain == 0.0  # a mirror is a different hash ...
    assert rows["mirror"].recall_dihedral >= 0.95, rows["mirror"]  # ... found through the dihedral hashes


def test_no_look_alike_matches(result) -> None:
    assert result.look_alikes == 300
    assert result.look_alike_matches_plain == 0
    assert result.look_alike_matches_dihedral == 0


def test_generation_is_deterministic_and_checks_arguments() -> None:
    a = make_known_media(5, n_known=2, per_transform=1, n_look_alikes=2)
    b = make_known_media(5, n_known=2, per_transform=1, n_look_alikes=2)
    assert a == b and len(a.near_duplicates) == 2 * len(TRANSFORMS)
    assert a.known[1].key == "known-5-1"
    with pytest.raises(ValueError, match="n_known"):
        make_known_media(5, n_known=-1)
    with pytest.raises(ValueError, match="transform must be one of"):
        near_duplicate(Image.new("RGB", (8, 8)), "crop", random.Random(0))


def test_robustness_cli_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seed", "2", "--known", "3", "--per-transform", "1", "--look-alikes", "3"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["known"] == 3 and result["threshold"] == 31
    assert {row["transform"] for row in result["rows"]} >= set(TRANSFORMS)
