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


def hash_columns(columns: Sequence[str], seed: int = 0) -> pl.Expr:
    """A 64-bit hash of several columns: the XOR of per-column hashes (seeds ``seed``, ``seed + 1``...).

    Grouping, joining or finding repeats on one 64-bit key is far cheaper than on several string
    columns; a collision (about 1e-12 for thousands of groups) merges two keys, so callers that
    must be exact check the few candidates on the columns themselves.
    """
    if not columns:
        return pl.lit(0, dtype=pl.UInt64)
    key = pl.col(columns[0]).hash(seed=seed)
    for i, c in enumerate(columns[1:], start=1):
        key = key ^ pl.col(c).hash(seed=seed + i)
    return key


def count_by(
    frame: pl.DataFrame,
    columns: Sequence[str],
    *,
    seed: int = 0,
    key: str | None = None,
    by: pl.Expr | pl.Series | None = None,
) -> pl.DataFrame:
    """Rows per distinct value of ``columns`` (``n``, Int64: partials summed over a table of
    10^10 rows overflow 32 bits): a group-by on their 64-bit hash,
    each group named by its first row. ``key``: also keep the hash, as a first column of that
    name (partial counts are then summed by one integer column). ``by``: the 64-bit hash of
    ``columns`` when the caller has one (default: :func:`hash_columns` with ``seed``)."""
    groups = (
        frame.select((hash_columns(columns, seed) if by is None else by).alias("__g"))
        .with_row_index("__row")
        .group_by("__g")
        .agg(pl.len().alias("n"), pl.first("__row"))
    )
    out = frame.select(columns).gather(groups["__row"]).with_columns(groups["n"].cast(pl.Int64))
    return out.insert_column(0, groups["__g"].alias(key)) if key else out


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
