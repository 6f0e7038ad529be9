"""Exact range matching of PDQ hashes on CPUs: every (stored, bank) pair within the threshold.

The scan is faiss-cpu's ``IndexBinaryFlat`` range search (exact XOR + popcount over all pairs,
multi-threaded). Measured here, indexing the smaller side and querying with the larger is the
fast orientation (1.08 vs 0.80 G comparisons/s on 2 cores for 200k x 10k), so that is what this
module does, in query batches that bound memory. Multi-index hashing is exact only with bit
flips and then no faster; HNSW misses matches: neither is used.

Rules applied here, once for every caller (backfill, re-match sweep, benchmarks):
- a pair matches when its distance is ``<= threshold`` (default 31, PDQ's usual distance);
- stored hashes with quality below ``min_quality`` (default 50, PDQ's guidance) never match;
- ``match_dihedral`` matches items through any of their variant hashes (rotations and flips),
  keeping the smallest distance per (item, bank entry).
On a GPU, ``kernels.hamming_matches`` gives the same pairs (``benchmarks/hashes.py`` checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from pipelines.hashes.codec import HASH_BITS, HASH_BYTES

DEFAULT_THRESHOLD = 31
"""Largest distance that matches by default (PDQ and HMA's default)."""
MIN_QUALITY = 50
"""Stored hashes of lower quality are never matched (PDQ's guidance)."""
_QUERY_BATCH = 1 << 18  # rows per range-search call: bounds the result buffers, keeps threads busy


@dataclass(frozen=True)
class Matches:
    """Matched pairs, sorted by (stored, bank); all arrays have one length."""

    stored: np.ndarray
    """int64 row of the stored hash (or item, for ``match_dihedral``)."""
    bank: np.ndarray
    """int64 row of the bank entry."""
    distance: np.ndarray
    """int32 Hamming distance, ``<= threshold``."""

    def __len__(self) -> int:
        return int(self.stored.shape[0])


def _empty() -> Matches:
    return Matches(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))


def _check(hashes: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(hashes)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != HASH_BYTES:
        raise ValueError(f"{name} must be uint8 [n, {HASH_BYTES}] (see codec.as_array), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"threshold must be an int in [0, {HASH_BITS}], got {threshold!r}")


def _range_search(index_side: np.ndarray, query_side: np.ndarray, threshold: int) -> tuple[np.ndarray, ...]:
    """(query row, index row, distance) of every pair within ``threshold``, via faiss."""
    index = faiss.IndexBinaryFlat(HASH_BITS)
    index.add(index_side)
    parts_q, parts_x, parts_d = [], [], []
    for start in range(0, query_side.shape[0], _QUERY_BATCH):
        batch = query_side[start : start + _QUERY_BATCH]
        lims, dist, rows = index.range_search(batch, threshold + 1)  # faiss keeps distance < radius
        counts = np.diff(lims).astype(np.int64)
        parts_q.append(np.repeat(np.arange(start, start + batch.shape[0], dtype=np.int64), counts))
        parts_x.append(rows.astype(np.int64, copy=False))
        parts_d.append(dist.astype(np.int32))
    return np.concatenate(parts_q), np.concatenate(parts_x), np.concatenate(parts_d)


def match_hashes(
    stored: np.ndarray,
    bank: np.ndarray,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    stored_quality: np.ndarray | None = None,
    min_quality: int = MIN_QUALITY,
) -> Matches:
    """Every pair ``(i, j)`` with ``hamming(stored[i], bank[j]) <= threshold``, exactly.

    Args:
        stored: uint8 ``[n, 32]`` hashes of media (``codec.as_array`` of ``media_hashes.pdq``).
        bank: uint8 ``[m, 32]`` bank entries.
        threshold: largest matching distance, 0..256.
        stored_quality: int ``[n]`` PDQ quality of each stored hash; rows below ``min_quality`` are
            never matched. None: every row counts as good quality (e.g. already filtered).
        min_quality: see ``stored_quality``.

    Returns:
        ``Matches`` with rows of ``stored`` and ``bank``, sorted by (stored, bank).
    """
    stored, bank = _check(stored, "stored"), _check(bank, "bank")
    _check_threshold(threshold)
    rows = np.arange(stored.shape[0], dtype=np.int64)
    if stored_quality is not None:
        quality = np.asarray(stored_quality)
        if quality.shape != (stored.shape[0],):
            raise ValueError(
                f"stored_quality must have one value per stored hash ({stored.shape[0]}), got {quality.shape}"
            )
        keep = quality >= min_quality
        if not keep.all():
            rows = rows[keep]
            stored = stored[keep]
    if stored.shape[0] == 0 or bank.shape[0] == 0:
        return _empty()
    if bank.shape[0] <= stored.shape[0]:
        s_idx, b_idx, dist = _range_search(bank, stored, threshold)
    else:
        b_idx, s_idx, dist = _range_search(stored, bank, threshold)
    s_idx = rows[s_idx]
    order = np.lexsort((b_idx, s_idx))
    return Matches(s_idx[order], b_idx[order], dist[order])


def match_dihedral(
    variants: np.ndarray,
    bank: np.ndarray,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    quality: np.ndarray | None = None,
    min_quality: int = MIN_QUALITY,
) -> Matches:
    """Items matched through any of their variant hashes (e.g. the 8 of ``pdq.hash_dihedral``).

    Args:
        variants: uint8 ``[n_items, n_variants, 32]``.
        bank: uint8 ``[m, 32]``.
        quality: int ``[n_items]``, one quality per item (a dihedral set shares one).

    Returns:
        ``Matches`` whose ``stored`` are item rows, one pair per (item, bank entry) with the
        smallest distance over the variants. Costs ``n_variants`` times a plain match.
    """
    arr = np.asarray(variants)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != HASH_BYTES:
        raise ValueError(f"variants must be uint8 [n_items, n_variants, {HASH_BYTES}], got {arr.dtype} {arr.shape}")
    n_items, n_variants = arr.shape[0], arr.shape[1]
    flat_quality = None if quality is None else np.repeat(np.asarray(quality), n_variants)
    if flat_quality is not None and flat_quality.shape != (n_items * n_variants,):
        raise ValueError(f"quality must have one value per item ({n_items}), got {np.asarray(quality).shape}")
    flat = match_hashes(
        arr.reshape(n_items * n_variants, HASH_BYTES),
        bank,
        threshold=threshold,
        stored_quality=flat_quality,
        min_quality=min_quality,
    )
    if len(flat) == 0:
        return flat
    items = flat.stored // n_variants
    order = np.lexsort((flat.distance, flat.bank, items))  # per (item, entry): smallest distance first
    items, entries, dist = items[order], flat.bank[order], flat.distance[order]
    first = np.ones(items.shape[0], dtype=bool)
    first[1:] = (items[1:] != items[:-1]) | (entries[1:] != entries[:-1])
    return Matches(items[first], entries[first], dist[first])
