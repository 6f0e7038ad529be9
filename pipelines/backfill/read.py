"""Read row ranges of backlog data files as the backlog schema, whatever the table looks like.

Real tables differ from the generator's: partition columns live in the log, not in the files;
files written before a column was added lack it; writers use large strings, other timestamp
units, extra columns; ``markets`` may be missing. This module turns any of them into the
columns the backfill needs, typed as :data:`pipelines.schema.BACKLOG`, plus where each row came
from (``source_file``, ``source_row``, ``source_version``). Only the row groups that overlap the
requested range are read, so a slice costs its own bytes, not the file's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.backfill.files import WorkFile
from pipelines.deltalog import filesystem
from pipelines.schema import BACKLOG

META = ("content_id", "created_at", "region", "markets", "language", "content_type")
MEDIA = ("text", "image", "frames")


@dataclass(frozen=True)
class Slice:
    """Rows ``[start, stop)`` of one work file."""

    file: WorkFile
    start: int
    stop: int


def _typed_constant(value: str | None, typ: pa.DataType, n: int) -> pa.Array:
    """A partition value (a string in the log) repeated ``n`` times as ``typ``."""
    if value is None:
        return pa.nulls(n, typ)
    arr = pa.array([value] * n, pa.string())
    return arr if pa.types.is_string(typ) else pc.cast(arr, typ)


def _normalise(table: pa.Table, columns: Sequence[str], schema: pa.Schema, work: WorkFile, first_row: int) -> pa.Table:
    n = table.num_rows
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in columns:
        want = BACKLOG.field(name).type
        if name in table.column_names:
            col = table.column(name)
        elif name in work.partition_values:
            declared = schema.field(name).type if name in schema.names else pa.string()
            col = _typed_constant(work.partition_values[name], declared, n)
        else:
            col = pa.nulls(n, want)
        if pa.types.is_timestamp(want) and pa.types.is_timestamp(col.type) and col.type.tz is None:
            col = pc.assume_timezone(col, "UTC")
        out[name] = col.cast(want) if not col.type.equals(want) else col
    if "markets" in out and "region" in out:
        # A missing markets column (or a null cell) means "distributed where uploaded".
        region = out["region"]
        markets = out["markets"]
        if markets.null_count:
            fallback = pa.array([[r] if r is not None else None for r in region.to_pylist()], pa.list_(pa.string()))
            out["markets"] = pc.if_else(pc.is_null(markets), fallback, markets)
    out["source_file"] = pa.array([work.path] * n, pa.string())
    out["source_row"] = pa.array(range(first_row, first_row + n), pa.int64())
    out["source_version"] = pa.array([work.version] * n, pa.int64())
    return pa.table(out)


def read_slice(table_uri: str, piece: Slice, columns: Sequence[str], schema: pa.Schema) -> Iterator[pa.Table]:
    """Yield the rows of ``piece`` in batches, with ``columns`` (backlog names) and the position columns."""
    import pyarrow.parquet as pq

    fs, path = filesystem(piece.file.uri(table_uri))
    with fs.open_input_file(path) as handle:
        reader = pq.ParquetFile(handle)
        present = set(reader.schema_arrow.names)
        cols = [c for c in columns if c in present]
        meta = reader.metadata
        start = 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            stop = start + rows
            if stop > piece.start and start < piece.stop:
                lo, hi = max(piece.start, start), min(piece.stop, stop)
                batch = reader.read_row_group(group, columns=cols).slice(lo - start, hi - lo)
                yield _normalise(batch, columns, schema, piece.file, lo)
            start = stop
            if start >= piece.stop:
                break


def read_table(table_uri: str, pieces: Sequence[Slice], columns: Sequence[str], schema: pa.Schema) -> pa.Table:
    """All rows of ``pieces`` as one table (empty with the right schema when there are none)."""
    parts = [t for piece in pieces for t in read_slice(table_uri, piece, columns, schema)]
    if parts:
        return pa.concat_tables(parts)
    fields = [BACKLOG.field(c) for c in columns] + [
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
        pa.field("source_version", pa.int64()),
    ]
    return pa.schema(fields).empty_table()
