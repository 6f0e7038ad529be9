"""The CPU matcher: exact pairs (vs brute force), threshold edges, quality and dihedral rules, vPDQ's rule."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.hashes import item_matches, match_dihedral, match_hashes
from pipelines.hashes.matcher import Matches


def _flip(rng: np.random.Generator, h: np.ndarray, n_bits: int) -> np.ndarray:
    bits = np.unpackbits(h)
    bits[rng.choice(256, n_bits, replace=False)] ^= 1
    return np.packbits(bits)


def _brute(stored: np.ndarray, bank: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    dist = np.unpackbits(stored[:, None, :] ^ bank[None, :, :], axis=2).sum(axis=2)
    return {(int(i), int(j), int(dist[i, j])) for i, j in zip(*np.nonzero(dist <= threshold), strict=True)}


def _triples(m: Matches) -> set[tuple[int, int, int]]:
    return set(zip(m.stored.tolist(), m.bank.tolist(), m.distance.tolist(), strict=True))


@pytest.mark.parametrize(("n_stored", "n_bank"), [(1, 1), (300, 7), (7, 300), (130, 65)])
@pytest.mark.parametrize("threshold", [0, 31, 256])
def test_exact_against_brute_force(n_stored: int, n_bank: int, threshold: int) -> None:
    rng = np.random.default_rng(n_stored * 1000 + n_bank + threshold)
    stored = rng.integers(0, 256, (n_stored, 32), dtype=np.uint8)
    bank = rng.integers(0, 256, (n_bank, 32), dtype=np.uint8)
    for j in range(0, n_bank, 2):
        bank[j] = _flip(rng, stored[rng.integers(n_stored)], [0, 1, 31, 32, 45][j % 5])
    m = match_hashes(stored, bank, threshold=threshold)
    assert _triples(m) == _brute(stored, bank, threshold)
    assert np.all(np.diff(m.stored * n_bank + m.bank) > 0), "sorted by (stored, bank), no repeats"
    assert m.stored.dtype == np.int64 and m.bank.dtype == np.int64 and m.distance.dtype == np.int32


def test_low_quality_never_matches() -> None:
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 256, (4, 32), dtype=np.uint8)
    m = match_hashes(stored, stored.copy(), stored_quality=np.array([100, 49, 50, 0]))
    assert _triples(m) == {(0, 0, 0), (2, 2, 0)}
    assert len(match_hashes(stored, stored, stored_quality=np.zeros(4))) == 0


def test_dihedral_keeps_the_best_variant_per_entry() -> None:
    rng = np.random.default_rng(2)
    bank = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    variants = rng.integers(0, 256, (2, 8, 32), dtype=np.uint8)
    variants[0, 5] = _flip(rng, bank[1], 20)
    variants[0, 6] = _flip(rng, bank[1], 3)
    variants[1, 0] = bank[2]
    m = match_dihedral(variants, bank, quality=np.array([80, 80]))
    assert _triples(m) == {(0, 1, 3), (1, 2, 0)}
    assert len(match_dihedral(variants, bank, quality=np.array([10, 10]))) == 0


def test_bad_inputs() -> None:
    good = np.zeros((2, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match="stored must be uint8"):
        match_hashes(np.zeros((2, 31), dtype=np.uint8), good)
    with pytest.raises(ValueError, match="threshold"):
        match_hashes(good, good, threshold=257)
    with pytest.raises(ValueError, match="stored_quality"):
        match_hashes(good, good, stored_quality=np.zeros(3))


def test_vpdq_rule_share_of_good_frames() -> None:
    # item 0: 5 frames, 4 matched -> 80%: match. item 1: 5 frames, 3 matched -> no.
    # item 2: 3 frames, one of quality 10 (not counted), both good ones matched -> match.
    # item 3: an image, its one frame matched. item 4: only a low-quality frame, matched -> no.
    frame_item = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 4])
    quality = np.array([90] * 10 + [90, 10, 90, 90, 20])
    matched_frames = np.array([0, 1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 14])
    frames = Matches(matched_frames, np.zeros(12, np.int64), np.arange(12, dtype=np.int32))
    res = item_matches(frame_item, quality, frames)
    assert res.item.tolist() == [0, 2, 3]
    assert res.matched_frames.tolist() == [4, 2, 1] and res.frames.tolist() == [5, 2, 1]
    assert res.best_distance.tolist() == [0, 7, 10]
    assert item_matches(frame_item, quality, frames, min_share=0.6).item.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="min_share"):
        item_matches(frame_item, quality, frames, min_share=0)
