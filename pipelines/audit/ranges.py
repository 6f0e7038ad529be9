"""Ranges of content_id over a clustered table: partitions read straight from the data files.

The Delta log keeps the smallest and largest ``content_id`` of every data file. When each file
holds a narrow range of ids (a table clustered by ``batchjobs compact --cluster``, or one whose
ids grow with time, so that each append covers the newest ids), the key space can be cut at
file boundaries into ranges of about the same cost (rows, :data:`REPEATED_ROW_COST` times over
for files whose ids overlap another's, where keys repeat and are resolved): the task of range
``[lo, hi)`` reads only the files whose ``[min, max]`` meets it, with the row filter
``lo <= content_id < hi`` (pushed down to the Parquet row groups). A file larger than a range is
cut at its row groups, whose id ranges its Parquet footer keeps (:func:`row_groups`). Every row
of an item, hence of a decision key and of a review unit, is in exactly one range, as in a hash
bucket, but nothing is shuffled: a pass costs one read of the table plus the per-range work, and
a task holds one range.

A table whose files each span most of the key space (ids in random order, never clustered) would
make every task read most files; :func:`plan_ranges` then returns None and the pass falls back to
the map/shuffle by hash bucket (:mod:`pipelines.audit.buckets`). Whether a range plan is used
changes cost only: the filters make every range exact whatever the layout.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

MAX_READ_AMPLIFICATION = 1.5
"""A range plan may read at most this many rows per row of the tables (files cut by a range
boundary are read by both sides); beyond it, the shuffle by hash bucket is cheaper."""

REPEATED_ROW_COST = 1.5
"""What a row of a piece whose ids overlap another's costs, in rows of pieces that overlap
nothing: keys repeat there, and their rows are sorted and resolved. Measured on the 10^7-row
benchmark's range of re-decided keys, in its Ray tasks: 1.4-1.6x per row (0.38-0.53 CPU-s for
1.1 M rows, against 0.45-0.66 for 2 M). Weighed 2x, that range came before the plain ranges of
2 M rows in the submission order although it costs less, and the pass ended with a 2 M-row range
alone on one core while the 1 M-row range beside it had long finished (0.3-0.5 s of a core idle
in a 2.9 s audit)."""

MAX_RANGE_SHARE = 2.5
"""A range may hold at most this many times its share of the rows (``total / n``)."""


@dataclass(frozen=True)
class FileRange:
    """One data file as the planner sees it: its id range (None: no statistics) and row count."""

    min_id: str | None
    max_id: str | None
    rows: int
    has_null_ids: bool = False


@dataclass(frozen=True)
class RangePlan:
    """``cuts``: the sorted cut points (range r is ``[cuts[r-1], cuts[r])``); ``reads[t][r]``: the
    indices of table t's files that range r reads; ``rows[r]``: the rows of the pieces range r
    reads (an upper bound of its rows); ``costs[r]``: its expected cost, in rows (:func:`_overlapping_rows`)."""

    cuts: tuple[str, ...]
    reads: tuple[tuple[tuple[int, ...], ...], ...]
    amplification: float
    rows: tuple[int, ...]
    costs: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.cuts) + 1

    def where(self, r: int, column: str = "content_id") -> pl.Expr | None:
        """The row filter of range ``r`` (range 0 also takes null ids; None: every row)."""
        col = pl.col(column)
        lo = col >= self.cuts[r - 1] if r > 0 else None
        hi = col < self.cuts[r] if r < len(self.cuts) else None
        if lo is not None and hi is not None:
            return lo & hi
        if lo is not None:
            return lo
        return (col.is_null() | hi) if hi is not None else None

    def holds(self, r: int, f: FileRange) -> bool:
        """Whether every row of ``f`` is in range ``r`` by its statistics: read without the filter
        (a filter splits the columns it reads into many small chunks, which every later step
        re-aligns)."""
        if f.min_id is None or f.max_id is None or (f.has_null_ids and r > 0):
            return False
        above = r == 0 or f.min_id >= self.cuts[r - 1]
        return above and (r == len(self.cuts) or f.max_id < self.cuts[r])


def _cuts(pieces: Sequence[tuple[FileRange, float]], n: int) -> list[str]:
    """Cut points at piece minima such that consecutive ranges cost about ``total / n`` each (each
    cut at the boundary nearest its ideal place, so a range is off by at most half a piece).

    ``pieces``: (piece, cost) pairs, the cost in rows (:func:`_weights`). Cut by rows alone, the
    range holding the 10^7-row benchmark's re-decided keys took a third file and cost 1.6x the
    others (0.88 CPU-s against 0.53-0.64); it ran alone at the end of the pass while the other
    core idled. A range of files that overlap nothing may hold up to half a piece more rows than
    its share of rows, one of overlapping files fewer.
    """
    ordered = sorted(
        ((f, w) for f, w in pieces if f.rows and f.min_id is not None), key=lambda p: (p[0].min_id, p[0].max_id)
    )
    total = sum(w for _, w in ordered)
    cuts: list[str] = []
    acc = 0.0
    for f, weight in ordered:
        assert f.min_id is not None and ordered[0][0].min_id is not None
        # A cut separates rows: above the smallest id and above the previous cut.
        above = f.min_id > (cuts[-1] if cuts else ordered[0][0].min_id)
        # At the boundary nearest each ideal cut: cutting only once the share is reached made a
        # range up to one whole file larger than its share (range 0 of the 5x10^7-row
        # benchmark: 2.5 M rows for a share of 1.94 M, and the largest task's memory with it).
        if len(cuts) < n - 1 and acc + weight / 2 >= total * (len(cuts) + 1) / n and above:
            cuts.append(f.min_id)
        acc += weight
    return cuts


def _weights(table: Sequence[FileRange]) -> list[float]:
    """Per piece of one table, its expected cost in rows: its rows, :data:`REPEATED_ROW_COST` times
    over where its ids overlap another piece's of the same table (keys repeat only there: a
    re-decision or a sweep appended over ids already decided). Pieces of two tables read side by
    side (decisions and scores) hold the same ids without repeating a key: they are weighed
    apart."""
    order = sorted(range(len(table)), key=lambda i: (table[i].min_id, table[i].max_id))  # type: ignore[arg-type,return-value]
    weights = [float(f.rows) for f in table]
    for i, overlaps in zip(order, _overlapping([table[i] for i in order]), strict=True):
        weights[i] *= REPEATED_ROW_COST if overlaps else 1.0
    return weights


def _span(f: FileRange, cuts: Sequence[str]) -> range:
    """The ranges piece ``f`` may hold rows of."""
    assert f.min_id is not None and f.max_id is not None
    return range(0 if f.has_null_ids else bisect.bisect_right(cuts, f.min_id), bisect.bisect_right(cuts, f.max_id) + 1)


def plan_ranges(tables: Sequence[Sequence[Sequence[FileRange]]], n: int) -> RangePlan | None:
    """Cut the id space of ``tables`` (read side by side) into about ``n`` ranges, or None.

    ``tables[t][i]``: the pieces of table t's file i (its row groups, or the whole file).
    None when a piece has no id statistics or the plan would read more than
    :data:`MAX_READ_AMPLIFICATION` rows per row (pieces spanning many ranges).
    """
    per_table = [[f for file in t for f in file if f.rows] for t in tables]
    pieces = [f for t in per_table for f in t]
    total = sum(f.rows for f in pieces)
    if n < 2 or total == 0 or any(f.min_id is None or f.max_id is None for f in pieces):
        return None
    weighed = [p for t in per_table for p in zip(t, _weights(t), strict=True)]
    cuts = _cuts(weighed, n)
    # Pieces spanning more than two ranges (a recent append of random ids) are read by every range
    # they meet; cut again without them so that they do not skew the balance.
    narrow = [(f, w) for f, w in weighed if len(_span(f, cuts)) <= 2]
    if len(narrow) < len(pieces) and narrow:
        cuts = _cuts(narrow, n)
    if not cuts:
        return None
    amplification = sum(f.rows * len(_span(f, cuts)) for f in pieces) / total
    if amplification > MAX_READ_AMPLIFICATION:
        return None
    # A task's memory follows its range: refuse a plan whose largest range could hold far more
    # than its share (pieces too big to cut), rather than hold it in one task.
    held: list[list[list[FileRange]]] = [[[] for _ in range(len(cuts) + 1)] for _ in per_table]  # table, range
    for t, table in enumerate(per_table):
        for f in table:
            for r in _span(f, cuts):
                held[t][r].append(f)
    upper = [sum(f.rows for h in held for f in h[r]) for r in range(len(cuts) + 1)]
    if max(upper) > MAX_RANGE_SHARE * total / n:
        return None
    reads: list[tuple[tuple[int, ...], ...]] = []
    for files in tables:
        per_range: list[set[int]] = [set() for _ in range(len(cuts) + 1)]
        for i, file in enumerate(files):
            for f in file:
                if f.rows:
                    for r in _span(f, cuts):
                        per_range[r].add(i)
        reads.append(tuple(tuple(sorted(r)) for r in per_range))
    costs = tuple(rows + round(sum(_overlapping_rows(h[r]) for h in held)) for r, rows in enumerate(upper))
    return RangePlan(tuple(cuts), tuple(reads), round(amplification, 3), tuple(upper), costs)


def _overlapping_rows(pieces: Sequence[FileRange]) -> float:
    """What the ``pieces`` (of one range and one table, all with id statistics) whose ids overlap
    another's cost beyond their rows (:data:`REPEATED_ROW_COST` - 1 per row): a range's cost is
    its rows plus this (:attr:`RangePlan.costs`).

    Keys repeat only where pieces overlap (a sweep or a re-scoring appends files over ids already
    decided), and a range's repeated keys are the costly part of its pass (sorted and resolved:
    the range holding the 1% re-decided keys of the 10^7-row benchmark costs 1.4-1.75x per row
    what a range of files that overlap nothing does). Scheduling the costliest ranges first keeps
    one of them from running alone at the end, and from starting on a worker whose memory earlier
    ranges have fragmented. Weighed within the range: a piece that overlaps another only in another
    range costs its rows here.
    """
    return sum(_weights(pieces)) - sum(f.rows for f in pieces)


def _overlapping(ordered: Sequence[FileRange]) -> list[bool]:
    """Per piece of ``ordered`` (sorted by id range, all with statistics), whether its ids overlap
    another piece's: one sweep in id order, a piece overlaps when it starts before the widest
    earlier end."""
    overlapping = [False] * len(ordered)
    widest = -1
    for i, f in enumerate(ordered):
        if widest >= 0 and f.min_id <= ordered[widest].max_id:  # type: ignore[operator]
            overlapping[i] = overlapping[widest] = True
        if widest < 0 or f.max_id > ordered[widest].max_id:  # type: ignore[operator]
            widest = i
    return overlapping


@functools.lru_cache(maxsize=4096)
def row_groups(uri: str, column: str = "content_id") -> tuple[FileRange, ...] | None:
    """The id range and row count of each row group of the Parquet file ``uri`` (None: unreadable
    or without statistics; the file is then planned as one piece). Cached: a Delta data file never
    changes, and a sweep plans its two passes over the same files."""
    import pyarrow.parquet as pq

    from pipelines.storage import is_remote

    try:
        if is_remote(uri):
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(uri)
            meta = pq.ParquetFile(path, filesystem=fs).metadata
        else:
            meta = pq.ParquetFile(uri.removeprefix("file://")).metadata
        col = meta.schema.names.index(column)
    except (OSError, ValueError):
        return None
    out = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        st = group.column(col).statistics
        if st is None or not st.has_min_max:
            return None
        lo, hi = st.min, st.max
        if not isinstance(lo, str) or not isinstance(hi, str):
            return None
        out.append(FileRange(lo, hi, group.num_rows, bool(st.null_count)))
    return tuple(out)
