"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from pipelines.errors import BadConfigError


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


def add_lake(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", required=True, help="lake root folder (tables, MLflow store, reports)")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BadConfigError(message)
