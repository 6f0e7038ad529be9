"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

from pipelines.errors import BadConfigError
from pipelines.lake import TRACKING_URI_ENV, Lake, open_lake


def timestamp(value: str) -> datetime:
    """Parse an ISO 8601 date or time; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{value}' is not an ISO 8601 date or time (e.g. 2026-01-31T00:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def add_lake(parser: argparse.ArgumentParser, *, help: str = "lake root: a folder or s3://bucket/prefix") -> None:
    """``--lake`` and ``--tracking-uri``; build the lake with :func:`lake_from_args`."""
    parser.add_argument("--lake", required=True, help=help)
    parser.add_argument(
        "--tracking-uri",
        dest="tracking_uri",
        default=None,
        help=f"MLflow tracking/registry URI (default: LAKE/mlflow.db for a folder lake; ${TRACKING_URI_ENV}, "
        "required, for an s3:// lake)",
    )


def add_ray_address(parser: argparse.ArgumentParser) -> None:
    """``--ray-address`` for commands whose passes run on Ray tasks when the tables are large."""
    parser.add_argument(
        "--ray-address",
        dest="ray_address",
        default=None,
        help="Ray cluster for the passes over large tables: HOST:PORT, auto, or local (start one here); "
        "default: $RAY_ADDRESS, else a running `ray start` cluster, else in this process",
    )


def use_ray_address(args: argparse.Namespace) -> None:
    """Make ``--ray-address`` the address every Ray pass of this command joins."""
    if getattr(args, "ray_address", None):
        os.environ["RAY_ADDRESS"] = args.ray_address


def lake_from_args(args: argparse.Namespace, *, create: bool = True, tracking: bool = False) -> Lake:
    """The lake of ``--lake`` / ``--tracking-uri``.

    ``tracking``: the command records MLflow runs or models, so an object-store lake without a
    tracking URI fails here, before any work, instead of when the first run is recorded.

    A given tracking URI is also put into this process's environment: Ray workers and Serve
    replicas rebuild the lake from its root and find the URI there (the local Ray this job
    starts inherits it; ``pipelines.ray_connect.connect`` forwards it to a cluster's workers).
    """
    if args.tracking_uri:
        os.environ[TRACKING_URI_ENV] = args.tracking_uri
    lake = open_lake(args.lake, create=create, tracking_uri=args.tracking_uri)
    if tracking:
        _ = lake.mlflow_uri  # raises BadConfigError with what to pass
    return lake


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BadConfigError(message)
