"""Compact the lake's output tables: many small unit commits into fewer, larger files.

A backfill commits each unit as soon as it is scored, so scores, decisions and dead letters
grow by a few small files per unit. ``compact`` rewrites them with Delta's OPTIMIZE
(bin-packing): the rewrite commit carries ``dataChange=false``, so

- time travel is untouched: every earlier version still reads the same rows (the replaced
  files are only marked removed, and nothing vacuums inside the retention period);
- exactly-once is untouched: application transactions live in the log, not in data files,
  and the backfill's key checks read a compaction's files as keys already present;
- readers and writers keep working: OPTIMIZE is an ordinary optimistic commit, retried on
  conflict with a concurrent backfill.

``cluster=True`` rewrites each table ordered by ``content_id`` instead (Delta's Z-order on one
column), into files of about :data:`CLUSTER_ROWS` rows: then every file holds a narrow range of
ids and sweeps and audits read each partition straight from its files, with no shuffle
(:mod:`pipelines.audit.ranges`). A lake whose ids already grow with time (snowflake ids, ULIDs)
is clustered as it is written and does not need it; one with random ids (UUIDs) does, after
large backfills. It rewrites the whole table (measured in docs/audit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import BadConfigError
from pipelines.lake import Lake, table_exists

COMPACTED = ("scores", "decisions", "dead_letters", "media_hashes")
TARGET_FILE_BYTES = 128 * 1024 * 1024
CLUSTER_ROWS = 1_000_000
"""Rows per file of a clustered rewrite: a few files per partition of a pass (2 million rows)."""


@dataclass(frozen=True)
class Compacted:
    table: str
    files_before: int
    files_after: int
    version: int | None


def compact(
    lake: Lake,
    tables: tuple[str, ...] = COMPACTED,
    *,
    target_bytes: int = TARGET_FILE_BYTES,
    cluster: bool = False,
    cluster_rows: int = CLUSTER_ROWS,
) -> list[Compacted]:
    """OPTIMIZE each existing table of ``tables`` (``cluster``: ordered by content_id); returns
    what changed per table."""
    from deltalake import DeltaTable

    unknown = [t for t in tables if t not in COMPACTED]
    if unknown:
        raise BadConfigError(f"--table {unknown[0]}: not a table compact rewrites; choose from {', '.join(COMPACTED)}")
    out = []
    for table in tables:
        uri = lake.path(table)
        if not table_exists(uri, lake.storage_options):
            continue
        dt = DeltaTable(uri, storage_options=lake.storage_options or None)
        before = len(dt.file_uris())
        if cluster:
            metrics = dt.optimize.z_order(["content_id"], target_size=_cluster_bytes(dt, cluster_rows))
        else:
            metrics = dt.optimize.compact(target_size=target_bytes)
        after = DeltaTable(uri, storage_options=lake.storage_options or None)
        changed = int(metrics.get("numFilesRemoved", 0)) > 0
        out.append(Compacted(table, before, len(after.file_uris()), after.version() if changed else None))
    return out


def _cluster_bytes(dt: object, rows_per_file: int) -> int:
    """A target file size of about ``rows_per_file`` rows, from the table's bytes per row."""
    actions = dt.get_add_actions(flatten=True)  # type: ignore[attr-defined]
    size = sum(int(v or 0) for v in actions.column("size_bytes").to_pylist())
    rows = sum(int(v or 0) for v in actions.column("num_records").to_pylist())
    return max(1 << 10, int(size / max(rows, 1) * rows_per_file))
