"""Where each table of a lake lives, and how tables are created.

A lake is one root folder (or URI) holding every table of one deployment. Tables are
created with log and deleted-file retention long enough for audits, so time travel to any
version inside the audit period keeps working; nothing in this project vacuums.

A lake on an object store (``s3://bucket/prefix``) takes its credentials and endpoint from
the standard environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``...), read alike by deltalake, polars, pyarrow and boto3
(MLflow's S3 artifact store). Its MLflow tracking store must be given separately
(``tracking_uri``, else ``$MLFLOW_TRACKING_URI``): sqlite cannot live on S3. Model
artifacts still go under the lake (``s3://bucket/prefix/mlartifacts``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines.errors import BadConfigError
from pipelines.schema import TABLES
from pipelines.storage import is_remote, join, local_path

DEFAULT_RETENTION_DAYS = 3650  # ten years: longer than any audit period we know of
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class Lake:
    """One deployment's lake root.

    root: a local folder or an object-store URI (``s3://``, ``gs://``, ``abfss://``).
    retention_days: Delta log and deleted-file retention set on tables this lake creates.
    tracking_uri: the MLflow tracking and registry store. Default: ``ROOT/mlflow.db`` (sqlite)
        for a local lake; ``$MLFLOW_TRACKING_URI`` for an object-store lake, which has no
        default (jobs rebuild a lake from its root on Ray workers, so the environment is
        what carries it there).
    """

    root: str
    retention_days: int = DEFAULT_RETENTION_DAYS
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise BadConfigError(f"retention_days must be >= 1, got {self.retention_days}")
        if self.tracking_uri is None and not self.is_local and os.environ.get(TRACKING_URI_ENV):
            object.__setattr__(self, "tracking_uri", os.environ[TRACKING_URI_ENV])

    @property
    def is_local(self) -> bool:
        return not is_remote(self.root)

    def path(self, table: str) -> str:
        """The URI of one table; ``table`` is a key of :data:`pipelines.schema.TABLES`."""
        if table not in TABLES:
            raise BadConfigError(f"unknown lake table '{table}'; known: {', '.join(TABLES)}")
        return f"{self.root.rstrip('/')}/{table}"

    @property
    def mlflow_uri(self) -> str:
        """The MLflow tracking and registry URI (raises BadConfigError for an object-store lake without one)."""
        if self.tracking_uri:
            return self.tracking_uri
        if self.is_local:
            return f"sqlite:///{local_path(self.root).resolve() / 'mlflow.db'}"
        raise BadConfigError(
            f"--lake {self.root}: MLflow's sqlite store cannot live on an object store; pass --tracking-uri "
            f"(e.g. sqlite:////var/lib/trustbatch/mlflow.db or http://mlflow:5000) or set {TRACKING_URI_ENV}"
        )

    @property
    def tracking_store_exists(self) -> bool:
        """False only for a sqlite tracking store whose file is not there yet (a server is assumed up)."""
        uri = self.mlflow_uri
        return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()

    @property
    def artifacts_uri(self) -> str:
        """Where MLflow keeps this lake's artifacts (models): ``ROOT/mlartifacts``."""
        if self.is_local:
            return (local_path(self.root).resolve() / "mlartifacts").as_uri()
        return join(self.root, "mlartifacts")

    @property
    def reports(self) -> str:
        return join(self.root, "reports")

    @property
    def storage_options(self) -> dict[str, str]:
        """deltalake storage options for this lake's tables: the one place that decides them.

        Credentials and endpoint are not here: deltalake reads them from the environment, and
        merges these options on top. On S3, ``conditional_put=etag`` makes a commit a
        put-if-absent of the next log entry, so of two writers on the same version exactly one
        wins and the other gets ``CommitFailedError``. deltalake 1.6 already defaults to it;
        stating it keeps a changed default, or an ``AWS_CONDITIONAL_PUT`` in the environment
        (which deltalake reads, and which these options override), from changing how commits
        are made.
        """
        if self.root.startswith(("s3://", "s3a://")):
            return {"conditional_put": "etag"}
        return {}

    def table_config(self) -> dict[str, str]:
        days = self.retention_days
        return {
            "delta.logRetentionDuration": f"interval {days} days",
            "delta.deletedFileRetentionDuration": f"interval {days} days",
        }


def open_lake(
    root: str,
    *,
    create: bool = True,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    tracking_uri: str | None = None,
) -> Lake:
    """Check that ``root`` is usable and return its :class:`Lake`.

    A local root is created if missing; an unwritable one fails here, with the path, before
    any work starts. ``tracking_uri``: see :class:`Lake`.
    """
    lake = Lake(root=root, retention_days=retention_days, tracking_uri=tracking_uri or None)
    if lake.is_local and create:
        p = local_path(root)
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadConfigError(
                f"--lake {root}: cannot create the folder ({exc.strerror}); pick a writable path"
            ) from exc
        if not os.access(p, os.W_OK | os.X_OK):
            raise BadConfigError(f"--lake {root}: folder is not writable; pick a writable path")
    return lake


def table_exists(uri: str, storage_options: dict[str, str] | None = None) -> bool:
    """Whether a Delta table exists at ``uri``."""
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(uri, storage_options=storage_options or None))


def ensure_table(lake: Lake, table: str, schema: pa.Schema | None = None) -> str:
    """Create ``table`` with the lake's retention if it does not exist; return its URI."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    uri = lake.path(table)
    options = lake.storage_options or None
    if table_exists(uri, options):
        return uri
    try:
        DeltaTable.create(
            uri,
            schema=schema if schema is not None else TABLES[table],
            mode="ignore",
            configuration=lake.table_config(),
            storage_options=options,
        )
    except DeltaError:
        # Another writer created it between our check and our create: that is fine.
        if not table_exists(uri, options):
            raise
    return uri
