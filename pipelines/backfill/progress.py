"""The backfill's progress table: how far each (backlog, model version, pack version) has got.

One row per finished unfiltered run: the backlog versions it covered ``(from_version,
to_version]``. The latest ``to_version`` is the watermark: the next scheduled run reads only the
data files added after it (from the Delta log). Runs with ``--since``, ``--until`` or ``--limit``
do part of the new work and move no watermark; what they scored is found by the key-level checks
of the next run. The table is tiny (a row per run), read whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from pipelines.lake import Lake, table_exists
from pipelines.schema import BACKFILL_PROGRESS
from pipelines.sink import commit_once


def watermark(lake: Lake, *, source: str, model_version: str, policy_version: str) -> int | None:
    """The last backlog version a finished run of this model and pack covered (None: never)."""
    uri = lake.path("backfill_progress")
    if not table_exists(uri):
        return None
    done = (
        pl.scan_delta(uri)
        .filter(
            (pl.col("source_uri") == source)
            & (pl.col("model_version") == model_version)
            & (pl.col("policy_version") == policy_version)
            & (pl.col("status") == "finished")
        )
        .select(pl.col("to_version").max())
        .collect()
    )
    value = done.item() if done.height else None
    return int(value) if value is not None else None


def record_finished(
    lake: Lake,
    *,
    source: str,
    model_version: str,
    policy_version: str,
    job: str,
    from_version: int | None,
    to_version: int,
    units: int,
    rows: int,
    chunk_rows: int,
    run_id: str,
) -> None:
    """Move the watermark to ``to_version`` (exactly once per job)."""
    row = {
        "source_uri": source,
        "model_version": model_version,
        "policy_version": policy_version,
        "job": job,
        "from_version": from_version,
        "to_version": to_version,
        "units": units,
        "rows": rows,
        "chunk_rows": chunk_rows,
        "status": "finished",
        "run_id": run_id,
        "at": datetime.now(UTC),
    }
    table = pa.Table.from_pylist([row], schema=BACKFILL_PROGRESS)
    commit_once(lake, "backfill_progress", table, app_id=f"backfill-{job}/progress", metadata={"job": job})
