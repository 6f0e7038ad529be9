"""Where each table of a lake lives, and how tables are created.

A lake is one root folder (or URI) holding every table of one deployment. Tables are
created with log and deleted-file retention long enough for audits, so time travel to any
version inside the audit period keeps working; nothing in this project vacuums.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines.errors import BadConfigError
from pipelines.schema import TABLES

DEFAULT_RETENTION_DAYS = 3650  # ten years: longer than any audit period we know of


@dataclass(frozen=True)
class Lake:
    """One deployment's lake root.

    root: a local folder or an object-store URI (``s3://``, ``gs://``, ``abfss://``).
    retention_days: Delta log and deleted-file retention set on tables this lake creates.
    """

    root: str
    retention_days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise BadConfigError(f"retention_days must be >= 1, got {self.retention_days}")

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def path(self, table: str) -> str:
        """The URI of one table; ``table`` is a key of :data:`pipelines.schema.TABLES`."""
        if table not in TABLES:
            raise BadConfigError(f"unknown lake table '{table}'; known: {', '.join(TABLES)}")
        return f"{self.root.rstrip('/')}/{table}"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{Path(self.root).resolve() / 'mlflow.db'}"

    @property
    def artifacts_uri(self) -> str:
        return (Path(self.root).resolve() / "mlartifacts").as_uri()

    @property
    def reports(self) -> str:
        return f"{self.root.rstrip('/')}/reports"

    def table_config(self) -> dict[str, str]:
        days = self.retention_days
        return {
            "delta.logRetentionDuration": f"interval {days} days",
            "delta.deletedFileRetentionDuration": f"interval {days} days",
        }


def open_lake(root: str, *, create: bool = True, retention_days: int = DEFAULT_RETENTION_DAYS) -> Lake:
    """Check that ``root`` is usable and return its :class:`Lake`.

    A local root is created if missing; an unwritable one fails here, with the path, before
    any work starts.
    """
    lake = Lake(root=root, retention_days=retention_days)
    if lake.is_local and create:
        p = Path(root.removeprefix("file://"))
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadConfigError(
                f"--lake {root}: cannot create the folder ({exc.strerror}); pick a writable path"
            ) from exc
        if not os.access(p, os.W_OK | os.X_OK):
            raise BadConfigError(f"--lake {root}: folder is not writable; pick a writable path")
    return lake


def table_exists(uri: str) -> bool:
    """Whether a Delta table exists at ``uri``."""
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(uri))


def ensure_table(lake: Lake, table: str, schema: pa.Schema | None = None) -> str:
    """Create ``table`` with the lake's retention if it does not exist; return its URI."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    uri = lake.path(table)
    if table_exists(uri):
        return uri
    try:
        DeltaTable.create(
            uri,
            schema=schema if schema is not None else TABLES[table],
            mode="ignore",
            configuration=lake.table_config(),
        )
    except DeltaError:
        # Another writer created it between our check and our create: that is fine.
        if not table_exists(uri):
            raise
    return uri
