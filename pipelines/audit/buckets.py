"""Whole-table passes as a map/shuffle by a hash of ``content_id``, on Ray tasks or in this process.

The lake has no physical bucket layout, so the work is partitioned logically, the way the
backfill's planner does it (:mod:`pipelines.backfill.classify`): map tasks read groups of the
Delta data files of the *pinned* version (``DeltaTable(uri, version=v).file_uris()``, from the
log only) and split their rows by ``hash(content_id) % n_buckets``; one reduce task per bucket
gets that bucket's rows from every map task and returns a small partial result. Every decision
key (content_id, market, policy_id) and every review unit (content_id, policy_id) lives in one
bucket, so "the current decision per key" and every per-item count are local to a bucket, and
the driver only merges partials (counts, quantile summaries, small frames).

Memory: a map task holds one file group (:data:`GROUP_ROWS` rows of the columns asked for), a
reduce task one bucket (:data:`BUCKET_ROWS` rows on average), the driver the partials. A small
table (at most :data:`LOCAL_ROWS` rows) is one bucket read in this process, without Ray; a large
table without Ray is processed bucket after bucket in this process (each bucket re-reads the
files, keeping only its rows: slower, same memory bound).

Files are read directly, so tables with deletion vectors are refused (the lake's writers never
make them: the sink appends, compaction rewrites whole files).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines import buckets as shared
from pipelines.errors import BadInputError

BUCKET_ROWS = 2_000_000
"""Rows per reduce task on average: bounds a task's memory (about 200 B a row of audit columns)."""
GROUP_ROWS = 2_000_000
"""Rows per map task's file group."""
LOCAL_ROWS = 3_000_000
"""Tables up to this many rows are one bucket, read in this process (no Ray)."""


@dataclass(frozen=True)
class PinnedFiles:
    """The data files of one table version, as the Delta log lists them (small: files, not rows)."""

    uri: str
    version: int
    files: tuple[str, ...]
    rows: tuple[int, ...]

    @property
    def total_rows(self) -> int:
        return sum(self.rows)


def pinned_files(uri: str, version: int) -> PinnedFiles:
    """List the data files of ``uri`` at ``version`` with their row counts (log only, no data read)."""
    from deltalake import DeltaTable

    dt = DeltaTable(uri, version=version)
    features = dt.protocol().reader_features or []
    if "deletionVectors" in features:
        raise BadInputError(
            f"{uri} v{version} uses deletion vectors, which this reader does not apply; "
            "rewrite it without them (OPTIMIZE, then disable delta.enableDeletionVectors)"
        )
    actions = dt.get_add_actions(flatten=True)
    paths = [str(p) for p in actions.column("path").to_pylist()]
    counts = [int(n) if n is not None else 0 for n in actions.column("num_records").to_pylist()]
    uris = dt.file_uris()
    # file_uris() and the add actions list the same files; match them by path suffix.
    by_suffix = {p: n for p, n in zip(paths, counts, strict=True)}
    rows = [next((n for p, n in by_suffix.items() if u.endswith(p)), 0) for u in uris]
    order = sorted(range(len(uris)), key=lambda i: uris[i])  # a stable order: same plan every run
    return PinnedFiles(uri, version, tuple(uris[i] for i in order), tuple(rows[i] for i in order))


def n_buckets_for(rows: int, *, bucket_rows: int = BUCKET_ROWS) -> int:
    return 1 if rows <= LOCAL_ROWS else max(1, math.ceil(rows / bucket_rows))


def file_groups(pinned: PinnedFiles, rows_per_group: int = GROUP_ROWS) -> list[tuple[int, int]]:
    """Consecutive file ranges of about ``rows_per_group`` rows: the map tasks' inputs."""
    return shared.file_groups(pinned.rows, rows_per_group)


bucket_expr = shared.bucket_expr
"""The bucket of each row's content_id: the one definition in :mod:`pipelines.buckets`."""


@dataclass(frozen=True)
class ReadSpec:
    """What a map task reads: columns (cast to ``schema``) and an optional row filter."""

    pinned: PinnedFiles
    schema: dict[str, pl.DataType]
    where: pl.Expr | None = None
    storage_options: dict[str, str] | None = None


def read_files(spec: ReadSpec, lo: int, hi: int, bucket: tuple[int, int] | None = None) -> pl.DataFrame:
    """Rows of files ``[lo, hi)`` (only bucket ``b`` of ``n`` when ``bucket=(b, n)``)."""
    files = list(spec.pinned.files[lo:hi])
    if not files:
        return pl.DataFrame(schema=spec.schema)
    frame = pl.scan_parquet(
        files, missing_columns="insert", extra_columns="ignore", storage_options=spec.storage_options or None
    )
    if spec.where is not None:
        frame = frame.filter(spec.where)
    frame = frame.select([pl.col(c).cast(t) for c, t in spec.schema.items()])
    if bucket is not None and bucket[1] > 1:
        frame = frame.filter(bucket_expr(bucket[1]) == bucket[0])
    return frame.collect()


def split_files(spec: ReadSpec, lo: int, hi: int, n_buckets: int) -> list[pl.DataFrame]:
    """Map step: rows of files ``[lo, hi)`` split into ``n_buckets`` frames."""
    frame = read_files(spec, lo, hi)
    parts = [frame.clear() for _ in range(n_buckets)]
    if frame.height:
        for (b,), part in (
            frame.with_columns(bucket_expr(n_buckets).alias("__b")).partition_by("__b", as_dict=True).items()
        ):
            parts[int(b)] = part.drop("__b")  # type: ignore[call-overload]
    return parts


def _reduce(
    fn: Callable[..., Any], args: tuple[Any, ...], bucket: int | None, sizes: tuple[int, ...], *frames: pl.DataFrame
) -> Any:
    """Reduce step: one frame per table (the bucket's rows from every map task), then ``fn``."""
    tables, i = [], 0
    for n in sizes:
        tables.append(concat(frames[i : i + n]))
        i += n
    return fn(*tables, *args) if bucket is None else fn(*tables, bucket, *args)


def use_ray_for(rows: int) -> bool:
    """Ray when the table is larger than one local bucket and a Ray is running or configured."""
    if rows <= LOCAL_ROWS:
        return False
    import ray

    return ray.is_initialized() or bool(os.environ.get("RAY_ADDRESS"))


def map_reduce(
    specs: ReadSpec | Sequence[ReadSpec],
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    use_ray: bool | None = None,
    buckets: int | None = None,
    pass_bucket: bool = False,
) -> Iterator[Any]:
    """Apply ``fn(rows_of_table_1, ..., *args)`` to every bucket; yields the partials in bucket order.

    ``pass_bucket``: call ``fn(rows..., bucket, *args)`` instead (the bucket's number).

    ``specs``: one table or several read side by side (every table split by the same hash of
    content_id, so a bucket gets the same ids from each). Partials are yielded one at a time
    (on Ray, fetched one at a time), so the driver folds them without holding them all.
    """
    specs = (specs,) if isinstance(specs, ReadSpec) else tuple(specs)
    rows = sum(s.pinned.total_rows for s in specs)
    n = buckets or n_buckets_for(rows)
    if use_ray is None:
        use_ray = use_ray_for(rows)
    if not use_ray:
        for b in range(n):
            tables = [read_files(s, 0, len(s.pinned.files), bucket=(b, n)) for s in specs]
            yield _reduce(fn, args, b if pass_bucket else None, (1,) * len(tables), *tables)
        return
    yield from _on_ray(specs, fn, args, n, pass_bucket)


def _on_ray(
    specs: tuple[ReadSpec, ...], fn: Callable[..., Any], args: tuple[Any, ...], n: int, pass_bucket: bool
) -> Iterator[Any]:
    import ray

    from pipelines.ray_connect import connect

    connect(None)
    # Map and reduce tasks reserve one CPU each: they are CPU-bound polars work.
    split = ray.remote(num_returns=n, max_retries=3)(split_files)
    reduce = ray.remote(max_retries=3)(_reduce)
    per_table: list[list[Any]] = []
    for spec in specs:
        ref_spec = ray.put(spec)
        maps: list[Any] = [split.remote(ref_spec, lo, hi, n) for lo, hi in file_groups(spec.pinned)]
        if n == 1:  # num_returns=1 gives one ref to the list, not a list of refs
            maps = [[m] for m in maps]
        per_table.append(maps)
    ref_args = ray.put(args)
    sizes = tuple(len(maps) for maps in per_table)
    reduces = [
        reduce.remote(fn, ref_args, b if pass_bucket else None, sizes, *[m[b] for maps in per_table for m in maps])
        for b in range(n)
    ]
    del per_table
    for i in range(len(reduces)):
        # Drop each result's reference once fetched: the object store frees it, and the pages of
        # it the driver mapped stop counting in the driver's memory.
        ref, reduces[i] = reduces[i], None
        part = ray.get(ref)
        del ref
        yield part


def concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate, skipping empty frames (an empty input gives the first frame, empty)."""
    kept = [f for f in frames if f.height]
    if not kept:
        return frames[0].clear() if frames else pl.DataFrame()
    return kept[0] if len(kept) == 1 else pl.concat(kept, how="vertical_relaxed")
