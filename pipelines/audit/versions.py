"""Pin every table at its version as of one time, so a report can be recomputed years later.

Delta keeps every version (the lake's retention is ten years and nothing vacuums), so the
version committed last at or before ``as_of`` identifies exactly the rows an audit saw.
The versions go into the report's lineage; re-running with the same ``--as-of`` reads the
same versions whatever was committed since.
"""

from __future__ import annotations

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


def version_as_of(uri: str, as_of: datetime) -> tuple[int | None, datetime | None]:
    """The last version of the table at ``uri`` committed at or before ``as_of``."""
    from deltalake import DeltaTable

    if not table_exists(uri):
        return None, None
    limit = int(as_of.timestamp() * 1000)
    best: tuple[int, int] | None = None
    for entry in DeltaTable(uri).history():
        version, ts = entry.get("version"), entry.get("timestamp")
        if version is None or ts is None:
            continue
        if int(ts) <= limit and (best is None or int(version) > best[0]):
            best = (int(version), int(ts))
    if best is None:
        return None, None
    return best[0], datetime.fromtimestamp(best[1] / 1000, tz=UTC)


def pin_tables(lake: Lake, as_of: datetime, *, backlog_uri: str | None = None) -> dict[str, Pinned]:
    """Pin each audited table of ``lake`` (the backlog may live elsewhere) as of ``as_of``."""
    out: dict[str, Pinned] = {}
    for table in AUDITED_TABLES:
        uri = backlog_uri if table == "backlog" and backlog_uri else lake.path(table)
        version, at = version_as_of(uri, as_of)
        out[table] = Pinned(table=table, uri=uri, version=version, committed_at=at)
    return out
