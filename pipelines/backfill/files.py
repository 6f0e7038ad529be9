"""Which backlog data files a backfill segment covers, taken from the Delta log.

A segment is either the whole snapshot at a pinned version (a model/pack pair's first run) or the
data changes between two versions (a scheduled run after the last finished one). Changes are the
files added with ``dataChange=true``, as Delta's streaming source reads them: an OPTIMIZE adds its
compacted files with ``dataChange=false`` and is skipped, so compaction re-scores nothing. Files
added by a commit that also removed data (MERGE, UPDATE, DELETE, overwrite) are marked
``rewrite``: their rows may carry ids the backlog had before, which the planner treats as edits
(re-scored only if the content changed), not as duplicates.

Everything here reads the log and table metadata only, never a data file's rows, except footers
when a writer recorded no row counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipelines.deltalog import commits, filesystem
from pipelines.errors import BadInputError
from pipelines.schema import BACKLOG, schema_problems

REQUIRED = ("content_id", "created_at", "region", "language", "content_type", "text")


@dataclass(frozen=True)
class WorkFile:
    """One data file of a segment, in plan order (version added, then path).

    path: relative to the table root, as the log names it (what scores rows record).
    version: the table version that added it (-1 when the log of that version is gone).
    """

    path: str
    version: int
    rows: int
    rewrite: bool = False
    partition_values: dict[str, str | None] = field(default_factory=dict)
    size: int = 0  # bytes, from the log

    def uri(self, table_uri: str) -> str:
        return f"{table_uri.rstrip('/')}/{self.path}"


class LogGoneError(Exception):
    """A version the segment needs has no JSON commit any more (log retention)."""


def table_schema(uri: str, version: int) -> pa.Schema:
    """The backlog's Arrow schema at ``version``, refusing what the reader cannot honour.

    Raises :class:`BadInputError` (one line) for a missing or mistyped required column (naming
    it), deletion vectors in use, and column mapping (physical names differ from logical ones).
    """
    from deltalake import DeltaTable

    dt = DeltaTable(uri, version=version)
    features = set(dt.protocol().reader_features or [])
    if "deletionVectors" in features:
        raise BadInputError(
            f"{uri}: the table uses deletion vectors, which deltalake {_deltalake_version()} cannot apply when "
            "reading files one by one; rewrite them away (Spark/Databricks: REORG TABLE ... APPLY (PURGE)) "
            "or copy the table without them"
        )
    mapping = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mapping not in (None, "none"):
        raise BadInputError(
            f"{uri}: column mapping mode '{mapping}' is not supported (physical column names differ from the "
            "schema); copy the table into one without column mapping"
        )
    schema = pa.schema(dt.schema().to_arrow())
    problems = schema_problems(schema, BACKLOG, required=REQUIRED)
    if problems:
        raise BadInputError(f"{uri}: " + "; ".join(problems) + " (see docs/architecture.md, 'The lake')")
    return schema


def _deltalake_version() -> str:
    import deltalake

    return str(getattr(deltalake, "__version__", "?"))


def _footer_rows(uri: str) -> int:
    import pyarrow.parquet as pq

    fs, path = filesystem(uri)
    with fs.open_input_file(path) as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def _with_rows(files: list[WorkFile], table_uri: str) -> list[WorkFile]:
    out = []
    for f in files:
        rows = f.rows if f.rows >= 0 else _footer_rows(f.uri(table_uri))
        out.append(WorkFile(f.path, f.version, rows, f.rewrite, f.partition_values, f.size))
    return out


def snapshot_files(uri: str, version: int) -> list[WorkFile]:
    """Every data file of the snapshot at ``version``, each with the version that added it."""
    from deltalake import DeltaTable

    dt = DeltaTable(uri, version=version)
    actions = dt.get_add_actions(flatten=True)
    table = pa.table(actions) if not isinstance(actions, pa.Table) else actions
    paths = [str(p) for p in table.column("path").to_pylist()]
    records = table.column("num_records").to_pylist() if "num_records" in table.column_names else [None] * len(paths)
    sizes = table.column("size_bytes").to_pylist() if "size_bytes" in table.column_names else [0] * len(paths)
    part_cols = [c for c in table.column_names if c.startswith("partition.")]
    parts = [{c.removeprefix("partition."): table.column(c)[i].as_py() for c in part_cols} for i in range(len(paths))]
    added_at: dict[str, int] = {}
    rewrite_of: dict[str, bool] = {}
    for commit in commits(uri, -1, version):
        if commit is None:
            continue  # before a checkpoint: those files keep version -1 (older than any we know)
        for a in commit.adds:
            added_at[a.path] = commit.version
            rewrite_of[a.path] = commit.rewrites_data
    files = [
        WorkFile(
            path=p,
            version=added_at.get(p, -1),
            rows=int(n) if n is not None else -1,
            rewrite=rewrite_of.get(p, False),
            partition_values={k: None if v is None else str(v) for k, v in pv.items()},
            size=int(b or 0),
        )
        for p, n, pv, b in zip(paths, records, parts, sizes, strict=True)
    ]
    files.sort(key=lambda f: (f.version, f.path))
    return _with_rows(files, uri)


def changed_files(uri: str, after: int, upto: int) -> list[WorkFile]:
    """Files added as data in versions ``(after, upto]`` (compaction skipped), in plan order.

    A file that a later commit of the range removed *as data* (its rows deleted or rewritten) is
    left out: its surviving rows come back in that commit's added files. A file only compacted
    away later is kept: its rows are new work and the file stays readable (nothing vacuums
    inside the log retention). Raises :class:`LogGoneError` when a version's JSON is gone.
    """
    found: dict[str, WorkFile] = {}
    for v, commit in zip(range(after + 1, upto + 1), commits(uri, after, upto), strict=True):
        if commit is None:
            raise LogGoneError(f"version {v}")
        for r in commit.removes:
            if r.data_change:
                found.pop(r.path, None)
        for a in commit.adds:
            if a.data_change:
                found[a.path] = WorkFile(
                    a.path,
                    commit.version,
                    a.num_records if a.num_records is not None else -1,
                    commit.rewrites_data,
                    dict(a.partition_values),
                    a.size,
                )
    files = sorted(found.values(), key=lambda f: (f.version, f.path))
    return _with_rows(files, uri)
