"""Hash buckets of content ids and file groups: how jobs split a table's rows into partitions.

Every job that partitions work by item (the backfill's key checks, sweeps, audits) puts a row in
bucket ``hash(content_id) mod n``: all rows of one item, hence of one decision key, land in one
bucket, so "already scored?" and "the current decision" are local to a bucket. Map tasks read
consecutive groups of data files of about the same row count.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

HASH_SEED = 0x5EED
"""Seed of the bucket hash. polars' hash is stable within one polars version, which every task of a
job shares; buckets are never stored, so a new version only changes how the next job splits."""


def bucket_expr(n_buckets: int, column: str = "content_id") -> pl.Expr:
    """The bucket of each row's ``column`` (null ids share one bucket)."""
    return (pl.col(column).hash(seed=HASH_SEED) % n_buckets).cast(pl.Int64)


def file_groups(rows: Sequence[int], rows_per_group: int) -> list[tuple[int, int]]:
    """Consecutive index ranges ``[lo, hi)`` of files whose row counts add up to about ``rows_per_group``."""
    groups, lo, acc = [], 0, 0
    for i, n in enumerate(rows):
        acc += n
        if acc >= rows_per_group:
            groups.append((lo, i + 1))
            lo, acc = i + 1, 0
    if lo < len(rows):
        groups.append((lo, len(rows)))
    return groups
