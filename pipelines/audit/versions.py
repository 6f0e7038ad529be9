"""Pin every table at its version as of one time, so a report can be recomputed years later.

Delta keeps every version (the lake's retention is ten years and nothing vacuums), so the
version committed last at or before ``as_of`` identifies exactly the rows an audit saw.
The versions go into the report's lineage; re-running with the same ``--as-of`` reads the
same versions whatever was committed since.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.lake import Lake, table_exists

AUDITED_TABLES: tuple[str, ...] = (
    "decisions", "scores", "dead_letters", "policy_packs", "review_samples", "review_labels", "backlog", "complaints",
)  # fmt: skip


@dataclass(frozen=True)
class Pinned:
    """A table pinned at one version (``version`` None: the table did not exist then)."""

    table: str
    uri: str
    version: int | None
    committed_at: datetime | None


def _commit_ms(uri: str, version: int) -> int | None:
    """The commit timestamp (ms) of one version, from its log entry's commitInfo (None if unreadable)."""
    import json

    from pipelines.storage import join, read_bytes

    try:
        text = read_bytes(join(uri, "_delta_log", f"{version:020d}.json")).decode("utf-8")
    except Exception:
        return None
    for line in text.splitlines():
        if '"commitInfo"' in line:
            ts = json.loads(line).get("commitInfo", {}).get("timestamp")
            return int(ts) if ts is not None else None
    return None


def _walk(uri: str, limit: int) -> tuple[int, int] | None:
    """The last version committed at or before ``limit`` (ms), over the whole history."""
    from deltalake import DeltaTable

    best: tuple[int, int] | None = None
    for entry in DeltaTable(uri).history():
        version, ts = entry.get("version"), entry.get("timestamp")
        if version is None or ts is None:
            continue
        if int(ts) <= limit and (best is None or int(version) > best[0]):
            best = (int(version), int(ts))
    return best


def _search(uri: str, limit: int) -> tuple[int, int] | bool | None:
    """Binary search of the log's commit timestamps: O(log versions) reads instead of the whole history.

    Returns False when a log entry it needs is unreadable (the caller walks the history then).
    Commit timestamps increase with versions (each commit is made after the previous one).
    """
    from deltalake import DeltaTable

    lo, hi = 0, DeltaTable(uri).version()
    ts_hi = _commit_ms(uri, hi)
    if ts_hi is None:
        return False
    if ts_hi <= limit:
        return hi, ts_hi
    best: tuple[int, int] | None = None
    while lo < hi:  # invariant: versions >= hi are after the limit
        mid = (lo + hi) // 2
        ts = _commit_ms(uri, mid)
        if ts is None:
            return False
        if ts <= limit:
            best, lo = (mid, ts), mid + 1
        else:
            hi = mid
    return best


def version_as_of(uri: str, as_of: datetime) -> tuple[int | None, datetime | None]:
    """The last version of the table at ``uri`` committed at or before ``as_of``.

    Reads O(log versions) log entries (a binary search on commit timestamps), so pinning a
    table with years of commits costs milliseconds; it walks the whole history only when a
    log entry it needs is gone (log retention, checkpoints).
    """
    if not table_exists(uri):
        return None, None
    limit = int(as_of.timestamp() * 1000)
    found = _search(uri, limit)
    best = _walk(uri, limit) if found is False else found
    if best is None or best is True:
        return None, None
    return best[0], datetime.fromtimestamp(best[1] / 1000, tz=UTC)


def pin_tables(lake: Lake, as_of: datetime, *, backlog_uri: str | None = None) -> dict[str, Pinned]:
    """Pin each audited table of ``lake`` (the backlog may live elsewhere) as of ``as_of``.

    The tables are pinned at once, each on a thread: a pin is a few small log reads, which wait
    on the store (object storage: a round trip each) more than they compute."""
    uris = {t: (backlog_uri if t == "backlog" and backlog_uri else lake.path(t)) for t in AUDITED_TABLES}
    with ThreadPoolExecutor(max_workers=len(uris), thread_name_prefix="audit-pin") as pool:
        found = dict(zip(uris, pool.map(lambda uri: version_as_of(uri, as_of), uris.values()), strict=True))
    return {t: Pinned(table=t, uri=uri, version=found[t][0], committed_at=found[t][1]) for t, uri in uris.items()}
