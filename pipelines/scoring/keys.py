"""Deterministic chunking: a row's chunk depends on its locator only, not on file layout."""

from __future__ import annotations

import hashlib

import polars as pl


def chunk_of(locator: str, n_chunks: int) -> int:
    # blake2b, not Python's hash(): stable across processes, machines and versions.
    digest = hashlib.blake2b(locator.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n_chunks


def assign_chunks(locators: pl.Series, n_chunks: int) -> pl.Series:
    return pl.Series("chunk_id", [chunk_of(x, n_chunks) for x in locators.to_list()], dtype=pl.Int64)


def job_key(*parts: object) -> str:
    """A short stable id naming one job: same inputs, same key, same transactions."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
