"""Read a Delta table's commit log: which data files each version added and removed, and why.

deltalake's Python API gives snapshots (``file_uris()``, ``get_add_actions()``) but not the
per-commit actions with their ``dataChange`` flag, which is what tells an append or a MERGE
(new data) from an OPTIMIZE (the same rows rewritten). Delta's own streaming source skips
``dataChange=false`` commits; the backfill does the same, so compaction re-scores nothing.

The log is JSON lines under ``<table>/_delta_log/<version:020d>.json`` (Delta protocol). Each
file is read once, whole; a commit is a few KB per thousand files it touches. Versions whose
JSON was removed by log retention (after a checkpoint) come back as ``None``: callers decide
what to do without them (the backfill falls back to a full scan with key-level checks).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow.fs as pafs


@dataclass(frozen=True)
class FileAction:
    """One ``add`` or ``remove`` action of a commit.

    path: as the log writes it, relative to the table root (percent-decoded).
    num_records: from the file's statistics, when the writer recorded them.
    """

    path: str
    version: int
    data_change: bool
    size: int = 0
    num_records: int | None = None
    partition_values: dict[str, str | None] = field(default_factory=dict)
    deletion_vector: bool = False


@dataclass(frozen=True)
class Commit:
    """What one table version did to the set of data files."""

    version: int
    operation: str
    adds: tuple[FileAction, ...]
    removes: tuple[FileAction, ...]
    info: dict[str, str] = field(default_factory=dict)
    """The commit's string-valued commitInfo fields (a writer's custom metadata: job, run_id...)."""

    @property
    def rewrites_data(self) -> bool:
        """True when the commit removed rows as data (MERGE, UPDATE, DELETE, overwrite), not compaction."""
        return any(r.data_change for r in self.removes)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path for a local folder or an object-store URI.

    Credentials and endpoints come from the standard environment (AWS_* for ``s3://``), as for
    deltalake and polars.
    """
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    if uri.startswith("file://"):
        return pafs.LocalFileSystem(), uri.removeprefix("file://")
    return pafs.FileSystem.from_uri(uri)


def _action(kind: dict, version: int) -> FileAction:
    stats = kind.get("stats")
    records = None
    if isinstance(stats, str) and stats:
        try:
            records = json.loads(stats).get("numRecords")
        except ValueError:
            records = None
    return FileAction(
        path=unquote(kind["path"]),
        version=version,
        data_change=bool(kind.get("dataChange", True)),
        size=int(kind.get("size") or 0),
        num_records=int(records) if records is not None else None,
        partition_values=dict(kind.get("partitionValues") or {}),
        deletion_vector=kind.get("deletionVector") is not None,
    )


def read_commit(table_uri: str, version: int) -> Commit | None:
    """The actions of one version, or None when its JSON is gone (log retention)."""
    fs, root = filesystem(table_uri.rstrip("/"))
    path = f"{root}/_delta_log/{version:020d}.json"
    try:
        with fs.open_input_stream(path) as handle:
            text = handle.read().decode("utf-8")
    except (FileNotFoundError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or "not found" in str(exc).lower() or "No such file" in str(exc):
            return None
        raise
    adds, removes, operation, info = [], [], "", {}
    for line in text.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if "add" in action:
            adds.append(_action(action["add"], version))
        elif "remove" in action:
            removes.append(_action(action["remove"], version))
        elif "commitInfo" in action:
            operation = str(action["commitInfo"].get("operation", ""))
            info = {k: v for k, v in action["commitInfo"].items() if isinstance(v, str)}
    return Commit(version=version, operation=operation, adds=tuple(adds), removes=tuple(removes), info=info)


def commits(table_uri: str, after: int, upto: int) -> Iterator[Commit | None]:
    """Commits of versions ``after + 1 .. upto`` in order (None for a version whose JSON is gone)."""
    for version in range(after + 1, upto + 1):
        yield read_commit(table_uri, version)


def added_files(table_uri: str, after: int, upto: int, *, skip_run: str | None = None) -> list[FileAction] | None:
    """Data files added in versions ``(after, upto]`` that are still in the table at ``upto``.

    For the sink's key checks: what other writers committed since a snapshot we checked. None
    when a version's JSON is gone. ``skip_run``: leave out the files of commits whose
    ``run_id`` metadata is this run (a job's own commits).
    """
    live: dict[str, FileAction] = {}
    for commit in commits(table_uri, after, upto):
        if commit is None:
            return None
        for r in commit.removes:
            live.pop(r.path, None)
        if skip_run is not None and commit.info.get("run_id") == skip_run:
            continue
        for a in commit.adds:
            live[a.path] = a
    return list(live.values())
