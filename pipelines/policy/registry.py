"""Record pack versions in the lake's ``policy_packs`` table, once each, immutably.

The first use of ``<pack id>@<version>`` stores the pack's exact text and its SHA-256
(through :func:`pipelines.sink.commit_once`, app id ``policy_pack:<policy_version>``).
A later use of the same version must carry the same text: a different SHA-256 is a
:class:`~pipelines.errors.BadConfigError`, since decisions already name that version.
The hash is over the exact file text (comments included), so any edit needs a new version.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

from pipelines.errors import BadConfigError
from pipelines.lake import Lake, table_exists
from pipelines.policy.model import Pack
from pipelines.schema import POLICY_PACKS
from pipelines.sink import commit_once

TABLE = "policy_packs"


def app_id(pack: Pack) -> str:
    """The application-transaction id of a pack version's record."""
    return f"policy_pack:{pack.policy_version}"


def recorded(lake: Lake, policy_version: str) -> dict[str, object] | None:
    """The ``policy_packs`` row of ``policy_version`` (first recorded), or None."""
    uri = lake.path(TABLE)
    if not table_exists(uri):
        return None
    # polars.read_delta, not DeltaTable.to_pyarrow_table: the latter can abort the process
    # at interpreter exit (FACTS.md, apache/arrow#34314).
    rows = pl.read_delta(uri).filter(pl.col("policy_version") == policy_version).sort("first_used_at")
    return rows.row(0, named=True) if rows.height else None


def _check_same(pack: Pack, row: dict[str, object]) -> None:
    if row["sha256"] != pack.sha256:
        raise BadConfigError(
            f"policy pack {pack.source}: version {pack.policy_version} was first used on "
            f"{row['first_used_at']} (run {row['first_run_id']}) with different content "
            f"(sha256 {row['sha256']}; this file: {pack.sha256}). A used pack version is immutable: "
            "give the changed pack a new version"
        )


def record_pack(lake: Lake, pack: Pack, *, run_id: str, now: dt.datetime | None = None) -> bool:
    """Record ``pack`` on its first use; return True if this call recorded it.

    Returns False when the same version with the same content is already recorded.
    Raises :class:`~pipelines.errors.BadConfigError` when the version is recorded with
    different content.
    """
    row = recorded(lake, pack.policy_version)
    if row is not None:
        _check_same(pack, row)
        return False
    when = now or dt.datetime.now(dt.UTC)
    data = pa.table(
        {
            "pack_id": [pack.pack_id],
            "version": [pack.version],
            "policy_version": [pack.policy_version],
            "sha256": [pack.sha256],
            "text": [pack.text],
            "first_used_at": pa.array([when], type=pa.timestamp("us", tz="UTC")),
            "first_run_id": [run_id],
        },
        schema=POLICY_PACKS,
    )
    committed = commit_once(
        lake,
        TABLE,
        data,
        app_id=app_id(pack),
        metadata={"run_id": run_id, "policy_version": pack.policy_version, "policy_sha256": pack.sha256},
    )
    if not committed:
        # A concurrent first use of this version won the race: it must be the same text.
        row = recorded(lake, pack.policy_version)
        if row is not None:
            _check_same(pack, row)
    return committed
