"""The one module that writes to the lake: exactly-once Delta commits with an audit trail.

Every write is an append that carries an application transaction ``(app_id, version)``
and custom commit metadata (run id, model and policy versions, config hash). deltalake
records the transaction but does NOT refuse a repeated one, so :func:`commit_once` reads
``transaction_version(app_id)`` itself before committing and again after every conflict,
and skips work that is already in the table. A writer killed at any point leaves at worst
Parquet files that no commit references: readers never see them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa

from pipelines.errors import CommitConflictError
from pipelines.lake import Lake, ensure_table
from pipelines.schema import TABLES

if TYPE_CHECKING:
    import polars as pl
    from deltalake import DeltaTable

DEFAULT_MAX_ATTEMPTS = 50


def committed_version(uri: str, app_id: str) -> int | None:
    """The last committed version of ``app_id`` in the table at ``uri`` (None if never)."""
    from deltalake import DeltaTable

    return DeltaTable(uri).transaction_version(app_id)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``data`` to the table schema so every commit has identical types.

    Nullable columns the caller does not know about (added to the schema later) are null.
    """
    for f in schema:
        if f.name not in data.column_names and f.nullable:
            data = data.append_column(f.name, pa.nulls(data.num_rows, f.type))
    data = data.select(schema.names)
    # Strings may stay 64-bit-offset (polars hands over large_string): Delta stores both as
    # ``string``, and casting them down copies every value for nothing.
    fields = [
        f.with_type(pa.large_string())
        if f.type == pa.string() and data.schema.field(f.name).type == pa.large_string()
        else f
        for f in schema
    ]
    return data.cast(pa.schema(fields, metadata=schema.metadata))


class SeenKeys:
    """Keys already in a table, kept current by reading only the files added since last time.

    Used to drop rows that another job (a different backfill, a sweep racing this one)
    committed after we planned. Together with commits that fail whenever the table moved
    past the snapshot we checked (``max_commit_retries=0``), this makes appends idempotent
    by content, not only by transaction id.

    since_version: the table version whose keys the caller has already accounted for (the
        backfill plans against it). Only files committed after it are read, so the cost and
        memory follow what other writers did meanwhile, not the size of the table. Without
        it the first refresh reads the key columns of the whole table.
    scope: a row filter on the keys worth reading (a sweep task's id span): row groups of other
        writers' files outside it are pruned by their statistics.
    own_run: the caller's run id; commits carrying it (the job's own, disjoint chunks) are not read.
    """

    def __init__(
        self,
        key: tuple[str, ...],
        where: Mapping[str, str] | None = None,
        *,
        since_version: int | None = None,
        scope: pl.Expr | None = None,
        own_run: str | None = None,
    ) -> None:
        self.key = key
        self.own_run = own_run
        self.where = dict(where or {})
        self.scope = scope
        self._version = since_version
        self._files: set[str] = set()
        self._keys: list[pl.DataFrame] = []

    def _read(self, files: list[str]) -> None:
        import polars as pl

        if not files:
            return
        cols = list(dict.fromkeys([*self.key, *self.where]))
        frame = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore").select(cols)
        # ``scope`` (e.g. the id range a sweep task commits) prunes row groups of other writers'
        # files by their statistics: a task reads the keys that can collide with its own rows.
        for expr in (self.scope, *(pl.col(n) == v for n, v in self.where.items())):
            if expr is not None:
                frame = frame.filter(expr)
        keys = frame.select(self.key).unique().collect()
        if keys.height:
            from pipelines.buckets import hash_columns

            self._keys.append(keys.with_columns(hash_columns(self.key, seed=211).alias("__h")))

    def refresh(self, dt: DeltaTable) -> None:
        from pipelines.deltalog import added_files

        current = dt.version()
        if self._version is not None and current <= self._version:
            return
        added = (
            added_files(dt.table_uri, self._version, current, skip_run=self.own_run)
            if self._version is not None
            else None
        )
        if added is None:  # no base version, or its log is gone: diff the file lists instead
            files = set(dt.file_uris())
            self._read(sorted(files - self._files))
            self._files = files
        else:
            root = dt.table_uri.rstrip("/")
            self._read([f"{root}/{a.path}" for a in added if f"{root}/{a.path}" not in self._files])
            self._files.update(f"{root}/{a.path}" for a in added)
        self._version = current

    def drop_seen(self, data: pa.Table) -> pa.Table:
        import polars as pl

        if not self._keys or data.num_rows == 0:
            return data
        if len(self._keys) > 1:
            self._keys = [pl.concat(self._keys, how="vertical_relaxed")]
        rows = pl.from_arrow(data)
        assert isinstance(rows, pl.DataFrame)
        seen = self._keys[0]
        from pipelines.buckets import hash_columns

        # A 64-bit hash of the key finds the few candidate rows; only those are compared exactly.
        hashed = rows.select(hash_columns(self.key, seed=211).alias("__h"))["__h"]
        candidate = hashed.is_in(seen["__h"].implode())
        if not candidate.any():
            return data
        exact = (
            rows.select(self.key)
            .with_row_index("__row")
            .filter(candidate)
            .join(seen.select(self.key).unique(), on=list(self.key), how="semi", nulls_equal=True)
        )
        drop = pl.Series(range(rows.height)).is_in(exact["__row"].cast(pl.Int64).implode())
        return data.filter(pa.array((~drop).to_arrow()))


def commit_once(
    lake: Lake,
    table: str,
    data: pa.Table,
    *,
    app_id: str,
    version: int = 1,
    metadata: Mapping[str, str] | None = None,
    dedup: SeenKeys | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> bool:
    """Append ``data`` to ``table`` exactly once for ``(app_id, version)``.

    Returns True when this call committed, False when the transaction was already there
    (a re-run after a crash, or a concurrent twin). With ``dedup``, rows whose key is
    already in the table are dropped against the very snapshot the commit is made on.
    Each commit is attempted on one snapshot and fails if another writer got in first;
    the loop then re-reads, re-checks the transaction (and keys) and tries again, with
    jittered back-off. After ``max_attempts`` it raises :class:`CommitConflictError`.
    """
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError

    schema = TABLES[table]
    uri = ensure_table(lake, table, schema)
    rows = _conform(data, schema)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.setdefault("app_id", app_id)
    for attempt in range(max_attempts):
        dt = DeltaTable(uri, storage_options=lake.storage_options or None)
        done = dt.transaction_version(app_id)
        if done is not None and done >= version:
            return False
        todo = rows
        if dedup is not None:
            dedup.refresh(dt)
            todo = dedup.drop_seen(rows)
        try:
            write_deltalake(
                dt,
                todo,
                mode="append",
                # Tables made before a column was added to the schema gain it (nullable) here.
                schema_mode="merge",
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(app_id=app_id, version=version)],
                    custom_metadata=meta,
                    # Fail instead of silently rebasing onto a newer snapshot: our loop
                    # re-checks the transaction and the keys on every retry.
                    max_commit_retries=0,
                ),
            )
            return True
        except CommitFailedError:
            time.sleep(min(2.0, 0.05 * (2 ** min(attempt, 6))) * (0.5 + random.random()))
    raise CommitConflictError(
        f"{uri}: commit of '{app_id}' conflicted {max_attempts} times with other writers; "
        "run the same command again (it resumes where it stopped)"
    )


def write_stream(
    lake: Lake,
    table: str,
    batches: pa.RecordBatchReader,
    *,
    app_id: str,
    version: int = 1,
    metadata: Mapping[str, str] | None = None,
) -> bool:
    """Append a stream of record batches to ``table`` in ONE commit, exactly once.

    Memory stays bounded by one batch: deltalake consumes the reader while writing files.
    Used for bulk loads (the generator) where one commit per load is what users expect.
    Returns False when ``(app_id, version)`` is already committed.
    """
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    schema = TABLES[table]
    uri = ensure_table(lake, table, schema)
    dt = DeltaTable(uri, storage_options=lake.storage_options or None)
    done = dt.transaction_version(app_id)
    if done is not None and done >= version:
        return False
    reader = pa.RecordBatchReader.from_batches(
        schema, (pa.Table.from_batches([b]).select(schema.names).cast(schema).to_batches()[0] for b in batches)
    )
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.setdefault("app_id", app_id)
    write_deltalake(
        dt,
        reader,
        mode="append",
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id=app_id, version=version)], custom_metadata=meta
        ),
    )
    return True
