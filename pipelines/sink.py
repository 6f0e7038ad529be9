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

import pyarrow as pa

from pipelines.errors import CommitConflictError
from pipelines.lake import Lake, ensure_table
from pipelines.schema import TABLES

DEFAULT_MAX_ATTEMPTS = 50


def committed_version(uri: str, app_id: str) -> int | None:
    """The last committed version of ``app_id`` in the table at ``uri`` (None if never)."""
    from deltalake import DeltaTable

    return DeltaTable(uri).transaction_version(app_id)


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast ``data`` to the table schema so every commit has identical types."""
    return data.select(schema.names).cast(schema)


def commit_once(
    lake: Lake,
    table: str,
    data: pa.Table,
    *,
    app_id: str,
    version: int = 1,
    metadata: Mapping[str, str] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> bool:
    """Append ``data`` to ``table`` exactly once for ``(app_id, version)``.

    Returns True when this call committed, False when the transaction was already there
    (a re-run after a crash, or a concurrent twin). Conflicts with concurrent writers are
    retried with jittered back-off, re-checking the transaction each time; after
    ``max_attempts`` it raises :class:`CommitConflictError`.
    """
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError

    schema = TABLES[table]
    uri = ensure_table(lake, table, schema)
    rows = _conform(data, schema)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.setdefault("app_id", app_id)
    for attempt in range(max_attempts):
        dt = DeltaTable(uri)
        done = dt.transaction_version(app_id)
        if done is not None and done >= version:
            return False
        try:
            write_deltalake(
                dt,
                rows,
                mode="append",
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(app_id=app_id, version=version)],
                    custom_metadata=meta,
                    # Our loop does the retries so that each one re-checks the transaction.
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
    dt = DeltaTable(uri)
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
