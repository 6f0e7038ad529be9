"""Whole-table passes over partitions of ``content_id``, on Ray tasks or in this process.

When the data files are clustered by id (the Delta log's per-file minimum and maximum say so),
each partition is a range of ids read straight from the files it meets, with no shuffle
(:mod:`pipelines.audit.ranges`). Otherwise the work is partitioned logically, the way the
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines import buckets as shared
from pipelines.audit.merge_tree import FAN_IN, fetch, tree_local, tree_on_ray
from pipelines.audit.ranges import FileRange, RangePlan, plan_ranges, row_groups
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
    ranges: tuple[FileRange, ...] = ()
    """Per file, its content_id range from the log's statistics (empty: unknown)."""
    partitions: tuple[tuple[tuple[str, object], ...], ...] = ()
    """Per file, its partition values (column, value) from the log: a partitioned table's files do
    not hold those columns (empty: the table is not partitioned)."""
    last_decided: tuple[object, ...] = ()
    """Per file, its largest ``decided_at`` from the log's statistics (None: unknown; empty: the
    table has no such column)."""
    constants: tuple[frozenset[tuple[str, str]], ...] = ()
    """Per file, (column, value) for each string column whose every row holds that one value, by
    the log's statistics (:func:`constant_columns`; empty: none known)."""

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
    names = set(actions.column_names)

    def column(name: str) -> list[object]:
        return list(actions.column(name).to_pylist()) if name in names else [None] * actions.num_rows

    paths = [str(p) for p in column("path")]
    counts = [int(n) if isinstance(n, int) else 0 for n in column("num_records")]
    lows, highs, nulls = column("min.content_id"), column("max.content_id"), column("null_count.content_id")
    last = dict(zip(paths, column("max.decided_at"), strict=True)) if "max.decided_at" in names else {}
    constants = _constants(column, names, paths)
    stats = {
        p: FileRange(_id(lo), _id(hi), n, bool(z))
        for p, n, lo, hi, z in zip(paths, counts, lows, highs, nulls, strict=True)
    }
    keys = list(dt.metadata().partition_columns)
    by_key = {k: column(f"partition.{k}") for k in keys}
    values = {p: tuple((k, by_key[k][i]) for k in keys) for i, p in enumerate(paths)}
    uris = dt.file_uris()
    # file_uris() and the add actions list the same files; match them by path suffix, looking
    # only at the paths of the same file name (a scan of every path per file is quadratic: 10^8
    # comparisons for the 10^4 files of 10^10 rows).
    by_name: dict[str, list[str]] = {}
    for p in stats:
        by_name.setdefault(p.rsplit("/", 1)[-1], []).append(p)
    matched = [next((p for p in by_name.get(u.rsplit("/", 1)[-1], []) if u.endswith(p)), None) for u in uris]
    per_uri = [stats[p] if p is not None else FileRange(None, None, 0) for p in matched]
    order = sorted(range(len(uris)), key=lambda i: uris[i])  # a stable order: same plan every run
    return PinnedFiles(
        uri,
        version,
        tuple(uris[i] for i in order),
        tuple(per_uri[i].rows for i in order),
        tuple(per_uri[i] for i in order),
        tuple(values.get(matched[i] or "", ()) for i in order) if keys else (),
        tuple(last.get(matched[i] or "") for i in order) if last else (),
        tuple(constants.get(matched[i] or "", frozenset()) for i in order),
    )


EXACT_STAT_BYTES = 32
"""A string statistic shorter than this is taken as exact: writers truncate longer ones (delta-rs
at 64 characters, Spark's data skipping at 32), and a truncated minimum may equal a truncated
maximum of different values."""


def _constants(
    column: Callable[[str], list[object]], names: set[str], paths: list[str]
) -> dict[str, frozenset[tuple[str, str]]]:
    """Per path, the string columns whose statistics (``column``: one column of the log's add
    actions) say every row holds one value: minimum equal to maximum (exact: shorter than
    :data:`EXACT_STAT_BYTES`) and no null."""
    out: dict[str, set[tuple[str, str]]] = {p: set() for p in paths}
    for name in names:
        col = name.removeprefix("min.")
        if col == name or f"max.{col}" not in names or f"null_count.{col}" not in names:
            continue
        lows = column(name)
        if not any(isinstance(v, str) for v in lows):
            continue
        for p, lo, hi, z in zip(paths, lows, column(f"max.{col}"), column(f"null_count.{col}"), strict=True):
            if isinstance(lo, str) and lo == hi and z == 0 and len(lo.encode()) < EXACT_STAT_BYTES:
                out[p].add((col, lo))
    return {p: frozenset(v) for p, v in out.items()}


def constant_columns(pinned: PinnedFiles, files: Iterable[int]) -> frozenset[str]:
    """The string columns that hold one and the same value in every row of ``files`` (by the log's
    statistics: a file without them holds none). A partition whose rows share a column's value
    can leave that column out of its group-by keys."""
    if len(pinned.constants) != len(pinned.files):
        return frozenset()
    common: frozenset[tuple[str, str]] | None = None
    for i in files:
        common = pinned.constants[i] if common is None else common & pinned.constants[i]
        if not common:
            return frozenset()
    return frozenset(c for c, _ in common or ())


def _id(value: object) -> str | None:
    """A content_id statistic as a string (None when absent or not a string column)."""
    return value if isinstance(value, str) else None


def n_buckets_for(rows: int, *, bucket_rows: int = BUCKET_ROWS, share: float = 1.0) -> int:
    """Partitions of a pass over ``rows`` file rows of which about ``share`` pass its filter: one
    when the table is small; else enough that each holds about ``bucket_rows`` rows, and at least
    two (a pass of that size runs on Ray, where two tasks use two cores)."""
    if rows <= LOCAL_ROWS:
        return 1
    return max(2, math.ceil(rows * share / bucket_rows))


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
    where = bucket_expr(bucket[1]) == bucket[0] if bucket is not None and bucket[1] > 1 else None
    return read_some(spec, range(lo, hi), where)


def read_some(spec: ReadSpec, files: Sequence[int], where: pl.Expr | None = None) -> pl.DataFrame:
    """Rows of the files at indices ``files`` that pass ``spec.where`` and ``where``."""
    paths = [spec.pinned.files[i] for i in files]
    if not paths:
        return pl.DataFrame(schema=spec.schema)
    options = spec.storage_options or None
    if spec.pinned.partitions:
        # A partitioned table: each file gets its partition values as columns, from the log.
        frame = pl.concat(
            [
                pl.scan_parquet(
                    path, missing_columns="insert", extra_columns="ignore", storage_options=options
                ).with_columns(
                    pl.lit(v).cast(spec.schema.get(k, pl.String())).alias(k) for k, v in spec.pinned.partitions[i]
                )
                for i, path in zip(files, paths, strict=True)
            ],
            how="diagonal_relaxed",
        )
    else:
        frame = pl.scan_parquet(paths, missing_columns="insert", extra_columns="ignore", storage_options=options)
    # The range filter first: on files clustered by id it skips whole row groups.
    for expr in (where, spec.where):
        if expr is not None:
            frame = frame.filter(expr)
    # One chunk per file: callers whose group-bys are heavy re-chunk (the copy costs less than
    # group-bys over many chunks); the sweep's pass 2 does not.
    return frame.select([pl.col(c).cast(t) for c, t in spec.schema.items()]).collect()


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
    call: Call, bucket: int, constants: Sequence[frozenset[str]], sizes: tuple[int, ...], *frames: pl.DataFrame
) -> Any:
    """Reduce step: one frame per table (the bucket's rows from every map task), then ``call``."""
    tables, i = [], 0
    for n in sizes:
        tables.append(concat(frames[i : i + n]))
        i += n
    return call(tables, bucket, constants)


def use_ray_for(rows: int) -> bool:
    """Ray when the table is larger than one local bucket and a Ray is running or configured."""
    if rows <= LOCAL_ROWS:
        return False
    import ray

    return ray.is_initialized() or bool(os.environ.get("RAY_ADDRESS"))


def runs_on_ray(specs: ReadSpec | Sequence[ReadSpec], use_ray: bool | None) -> bool:
    """Whether a pass over ``specs`` runs on Ray: ``use_ray`` when given, else by the tables' rows
    (:func:`use_ray_for`). The rule :func:`map_reduce` follows, for callers that prepare for it."""
    if use_ray is not None:
        return use_ray
    specs = (specs,) if isinstance(specs, ReadSpec) else tuple(specs)
    return use_ray_for(sum(s.pinned.total_rows for s in specs))


def map_reduce(
    specs: ReadSpec | Sequence[ReadSpec],
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    use_ray: bool | None = None,
    buckets: int | None = None,
    pass_bucket: bool = False,
    pass_constants: bool = False,
    combine: Callable[[Iterable[Any]], Any] | None = None,
    root: Callable[[Iterable[Any]], Any] | None = None,
) -> Iterator[Any]:
    """Apply ``fn(rows_of_table_1, ..., *args)`` to every bucket: the partials, in bucket order.

    On Ray the tasks are submitted when this is called; in this process each partition is read
    and computed when the iterator reaches it.

    ``pass_bucket``: call ``fn(rows..., bucket, *args)`` instead (the bucket's number).

    ``pass_constants``: also pass ``constants=``, per table the columns that hold one value in
    all the partition's rows (:func:`constant_columns` of the files a range reads; of the whole
    table for a hash bucket, which gets rows of every file).

    ``specs``: one table or several read side by side (every table split by the same hash of
    content_id, so a bucket gets the same ids from each). Partials are yielded one at a time
    (on Ray, fetched one at a time), so the driver folds them without holding them all.

    ``combine``: merge partials into one (associative, in the order given; it may be given an
    iterator). The partials are then merged in a tree of fan-in :data:`FAN_IN` and only the root
    is yielded (:mod:`pipelines.audit.merge_tree`). On Ray the levels below the root are folded
    on the cluster, and the driver folds the root's (at most FAN_IN) inputs as they arrive. The
    tree's shape depends only on the partition count, so Ray and local runs merge alike.

    ``root``: what folds the root's inputs, in this process (default: ``combine``).
    """
    specs = (specs,) if isinstance(specs, ReadSpec) else tuple(specs)
    rows = sum(s.pinned.total_rows for s in specs)
    n = buckets or n_buckets_for(rows)
    use_ray = runs_on_ray(specs, use_ray)
    plan = plan_ranges([_pieces(s.pinned, rows // n) for s in specs], n) if n > 1 else None
    call = Call(fn, args, pass_bucket, pass_constants)
    if not use_ray:
        # In this process, one partition at a time as the caller asks for them.
        return _local(specs, plan, n, call, combine, root)

    # On Ray every task is submitted now, before the first partial is asked for: the caller
    # may do other work (start its tracking run) while they run.
    def submit() -> list[Any]:
        if plan is not None:
            return _by_range(specs, plan, call)
        return _on_ray(specs, call, n)

    refs = submit()
    if combine is None:
        return fetch(refs)
    # Folds on the cluster while more than FAN_IN partials are left; the driver folds the last
    # ones itself, in order, as they arrive (one fewer round trip through the object store).
    return tree_on_ray(refs, combine, root or combine, resubmit=submit)


@dataclass(frozen=True)
class Call:
    """What each partition calls, and with what: ``fn(*tables, [partition,] *args, [constants=])``
    (:func:`map_reduce`)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    bucket: bool
    """Pass the partition's number after its tables."""
    constants: bool
    """Pass ``constants=``: per table, the columns that hold one value in all the partition's rows."""

    def __call__(self, tables: Sequence[pl.DataFrame], partition: int, constants: Sequence[frozenset[str]]) -> Any:
        head = (*tables, partition) if self.bucket else tuple(tables)
        if self.constants:
            return self.fn(*head, *self.args, constants=tuple(constants))
        return self.fn(*head, *self.args)


def _local(
    specs: tuple[ReadSpec, ...],
    plan: RangePlan | None,
    n: int,
    call: Call,
    combine: Callable[[Iterable[Any]], Any] | None,
    root: Callable[[Iterable[Any]], Any] | None = None,
) -> Iterator[Any]:
    if plan is not None:
        parts: Iterator[Any] = (_range_task(specs, plan, r, call) for r in range(plan.n))
    else:
        constants = _whole_table_constants(specs)
        parts = (
            _reduce(
                call,
                b,
                constants,
                (1,) * len(specs),
                *[read_files(s, 0, len(s.pinned.files), bucket=(b, n)) for s in specs],
            )
            for b in range(n)
        )
    yield from (parts if combine is None else [tree_local(parts, combine, root or combine)])


def _whole_table_constants(specs: Sequence[ReadSpec]) -> tuple[frozenset[str], ...]:
    """Per table, the columns that hold one value in all its files: a hash bucket gets rows of
    every file."""
    return tuple(constant_columns(s.pinned, range(len(s.pinned.files))) for s in specs)


def _pieces(pinned: PinnedFiles, range_rows: int) -> list[tuple[FileRange, ...]]:
    """Per file, what the range planner cuts at: the file, or its row groups when it holds more
    than half a range (only those footers are read)."""
    if len(pinned.ranges) != len(pinned.files):
        return [(FileRange(None, None, n),) for n in pinned.rows]
    out: list[tuple[FileRange, ...]] = []
    for uri, whole in zip(pinned.files, pinned.ranges, strict=True):
        groups = row_groups(uri) if whole.rows > range_rows // 2 and whole.min_id is not None else None
        out.append(groups if groups and sum(g.rows for g in groups) == whole.rows else (whole,))
    return out


def _range_task(specs: tuple[ReadSpec, ...], plan: RangePlan, r: int, call: Call) -> Any:
    """One range: read its rows from the files that meet it, then ``call`` them."""
    tables = [read_some(s, plan.reads[k][r], _range_where(s, plan, r, plan.reads[k][r])) for k, s in enumerate(specs)]
    return call(tables, r, [constant_columns(s.pinned, plan.reads[k][r]) for k, s in enumerate(specs)])


def _range_where(spec: ReadSpec, plan: RangePlan, r: int, files: Sequence[int]) -> pl.Expr | None:
    """The row filter of range ``r`` over ``spec``'s ``files``: None when each lies inside the range
    by its statistics (a table clustered by id, cut at file boundaries: the common case)."""
    ranges = spec.pinned.ranges
    if len(ranges) == len(spec.pinned.files) and all(plan.holds(r, ranges[i]) for i in files):
        return None
    return plan.where(r)


def _by_range(specs: tuple[ReadSpec, ...], plan: RangePlan, call: Call) -> list[Any]:
    """One Ray task per range of ``plan`` (no shuffle); returns their result references in order."""
    import ray

    from pipelines.ray_connect import connect

    connect(None)
    task = ray.remote(max_retries=3)(_range_task)
    ref_specs, ref_plan, ref_call = ray.put(specs), ray.put(plan), ray.put(call)
    refs: list[Any] = [None] * plan.n
    for r in submission_order(plan.costs):
        refs[r] = task.remote(ref_specs, ref_plan, r, ref_call)
    return refs


def submission_order(costs: Sequence[int]) -> list[int]:
    """The order to submit the partitions in: group after group of FAN_IN in partition order
    (the merge tree's groups: a group is folded, and its fold process lets go of its partials,
    while later groups are computed; in any other order every group waits for the end and the
    fold process holds most partials), costliest first within each group (so that the
    cheap ones fill the cores at the end instead of one big range running alone: ranges are cut
    at file or row-group boundaries, their sizes can differ twofold, and repeated keys cost
    more: :attr:`~pipelines.audit.ranges.RangePlan.costs`)."""
    groups = [range(lo, min(lo + FAN_IN, len(costs))) for lo in range(0, len(costs), FAN_IN)]
    return [r for group in groups for r in sorted(group, key=lambda r: -costs[r])]


def _on_ray(specs: tuple[ReadSpec, ...], call: Call, n: int) -> list[Any]:
    """Map tasks split file groups by hash bucket; one reduce task per bucket; returns the reduce
    tasks' result references in bucket order."""
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
    ref_call = ray.put(call)
    constants = _whole_table_constants(specs)
    sizes = tuple(len(maps) for maps in per_table)
    reduces = [
        reduce.remote(ref_call, b, constants, sizes, *[m[b] for maps in per_table for m in maps]) for b in range(n)
    ]
    del per_table
    return reduces


def concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate, skipping empty frames (an empty input gives the first frame, empty)."""
    kept = [f for f in frames if f.height]
    if not kept:
        return frames[0].clear() if frames else pl.DataFrame()
    return kept[0] if len(kept) == 1 else pl.concat(kept, how="vertical_relaxed")
