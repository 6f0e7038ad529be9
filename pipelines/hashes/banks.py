"""Hash banks as a versioned lake table (``hash_banks``): import, retract, list, read.

A bank is the set of rows of ``hash_banks`` with one ``bank_id``. Each import or retraction is
the bank's next **list version** (1, 2, ...): its rows carry that version, ``added_at`` and the
SHA-256 of what was imported. An entry is retracted by a later row with the same hash and
``retracted = true``; the entries **live at version v** are the hashes whose latest row up to v
is not a retraction. A hash retracted and imported again is live again.

Exactly once: an import is an application transaction named by the bank and the file's
SHA-256 (``hash_banks/<bank>/import/<sha256>``), so importing the same file content twice
changes nothing; a retraction likewise (``hash_banks/<bank>/retract/<sha256>``, the SHA-256 of
the file or of the sorted ids). Hashes already live in the bank are not added again. A bad file
is refused whole before anything is written (``read_bank_csv``: one line, with line numbers).

Banks are read whole (one bank's rows: 32 bytes of hash + ids per entry); they are small next to
the media they are matched against. The ``hash_banks`` folder holds hashes: it must never be
copied into a report.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.errors import BadInputError, CommitConflictError
from pipelines.hashes.bankfile import read_bank_csv
from pipelines.lake import Lake, table_exists
from pipelines.schema import HASH_BANKS
from pipelines.sink import commit_once

TABLE = "hash_banks"
_BANK_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION_RACES = 20  # another import of the same bank took our list version: recompute, retry
_RowsFn = Callable[[pl.DataFrame, int], tuple[pa.Table, int]]
"""Builds a change's rows from the bank's existing rows and the list version they get; returns (rows, skipped)."""


@dataclass(frozen=True)
class BankChange:
    """What one import or retraction did."""

    bank: str
    what: str
    """``import`` or ``retract``."""
    sha256: str
    """Of the file (or of the sorted ids): names the application transaction."""
    in_request: int
    """Entries in the file (or ids given)."""
    changed: int
    """Entries added (import) or retracted (retraction) by this call."""
    skipped: int
    """Import: hashes already live in the bank. Retraction: 0."""
    list_version: int
    """The bank's list version after the call (unchanged when nothing changed)."""
    committed: bool
    """False when this file content was already imported (or retracted) before."""

    def line(self) -> str:
        if not self.committed:
            return (
                f"bank {self.bank}: this {'file' if self.what == 'import' else 'retraction'} "
                f"(sha256 {self.sha256[:12]}) was already applied; nothing changed (list version {self.list_version})"
            )
        verb = "added" if self.what == "import" else "retracted"
        extra = f", {self.skipped} already in the bank" if self.what == "import" else ""
        return (
            f"bank {self.bank}: {self.changed} of {self.in_request} entries {verb}{extra}; "
            f"list version {self.list_version} (sha256 {self.sha256[:12]})"
        )


@dataclass(frozen=True)
class BankInfo:
    """One line of ``batchjobs hashes list``."""

    bank: str
    live: int
    retracted: int
    list_version: int
    last_change: datetime


def check_bank_id(bank: str) -> str:
    if not isinstance(bank, str) or not _BANK_ID.match(bank):
        raise BadInputError(
            f"bank name {bank!r} is not a bank id: use lower-case letters, digits and _ (e.g. known_csam)"
        )
    return bank


def read_banks(lake: Lake, bank: str | None = None) -> pl.DataFrame:
    """Rows of ``hash_banks`` (all banks, or one), empty with the table's columns when none."""
    uri = lake.path(TABLE)
    if not table_exists(uri, lake.storage_options or None):
        return pl.DataFrame(pl.from_arrow(HASH_BANKS.empty_table()))
    frame = pl.read_delta(uri, storage_options=lake.storage_options or None)
    return frame.filter(pl.col("bank_id") == bank) if bank is not None else frame


def list_version(rows: pl.DataFrame) -> int:
    """The latest list version among ``rows`` of one bank (0 for an empty bank)."""
    return int(rows["list_version"].max() or 0) if rows.height else 0  # type: ignore[arg-type]


def live_entries(rows: pl.DataFrame, *, at: int | None = None, after: int | None = None) -> pl.DataFrame:
    """Entries of one bank live at list version ``at`` (default: the latest).

    after: keep only entries whose latest row arrived after this list version (the re-match of
    new entries). Columns: pdq, external_id, source, list_version, added_at; sorted by
    (list_version, pdq) so that entry rows are deterministic.
    """
    if at is not None:
        rows = rows.filter(pl.col("list_version") <= at)
    latest = rows.sort("list_version", "retracted").group_by("pdq", maintain_order=True).last()
    live = latest.filter(~pl.col("retracted"))
    if after is not None:
        live = live.filter(pl.col("list_version") > after)
    return live.select("pdq", "external_id", "source", "list_version", "added_at").sort("list_version", "pdq")


def _commit(lake: Lake, rows: pa.Table, app_id: str, bank: str, version: int) -> bool:
    return commit_once(
        lake,
        TABLE,
        rows,
        app_id=app_id,
        metadata={"job": "hashes", "bank": bank, "list_version": str(version)},
        max_attempts=1,
    )


def _apply(lake: Lake, bank: str, app_id: str, make: _RowsFn) -> tuple[bool, int, int, int]:
    """Commit the rows ``make(existing rows)`` builds, as the bank's next list version.

    Returns (committed, list version after, rows changed, rows skipped). A concurrent import into the
    same bank can take the version we computed: the commit then fails, and we recompute.
    """
    from deltalake import DeltaTable

    for _ in range(_VERSION_RACES):
        uri = lake.path(TABLE)
        existing = read_banks(lake, bank)
        current = list_version(existing)
        if table_exists(uri, lake.storage_options or None) and DeltaTable(uri).transaction_version(app_id) is not None:
            return False, current, 0, 0
        rows, skipped = make(existing, current + 1)
        version = current + 1 if rows.num_rows else current
        try:
            committed = _commit(lake, rows, app_id, bank, version)
        except CommitConflictError:
            continue
        return committed, version if committed else list_version(read_banks(lake, bank)), rows.num_rows, skipped
    raise CommitConflictError(f"bank {bank}: other imports kept taking the next list version; run the command again")


def _rows(
    bank: str, pdq: list[bytes], ext: list[str | None], src: list[str | None], version: int, sha: str, retracted: bool
) -> pa.Table:
    now = datetime.now(UTC)
    n = len(pdq)
    return pa.table(
        {
            "bank_id": [bank] * n,
            "pdq": pa.array(pdq, type=pa.binary(32)),
            "external_id": pa.array(ext, type=pa.string()),
            "source": pa.array(src, type=pa.string()),
            "added_at": pa.array([now] * n, type=pa.timestamp("us", tz="UTC")),
            "list_version": pa.array([version] * n, type=pa.int64()),
            "retracted": pa.array([retracted] * n, type=pa.bool_()),
            "import_sha256": [sha] * n,
        },
        schema=HASH_BANKS,
    )


def import_bank(lake: Lake, bank: str, path: str | Path) -> BankChange:
    """Import the bank CSV at ``path`` into ``bank`` as its next list version (see module docstring)."""
    check_bank_id(bank)
    bf = read_bank_csv(path)  # every line checked: a bad file raises before anything is written

    def rows(existing: pl.DataFrame, version: int) -> tuple[pa.Table, int]:
        live = set(live_entries(existing)["pdq"].to_list())
        new = [e for e in bf.entries if e.pdq not in live]
        ext, src = [e.external_id for e in new], [e.source for e in new]
        table = _rows(bank, [e.pdq for e in new], ext, src, version, bf.sha256, retracted=False)
        return table, len(bf.entries) - len(new)

    committed, version, changed, skipped = _apply(lake, bank, f"{TABLE}/{bank}/import/{bf.sha256}", rows)
    return BankChange(bank, "import", bf.sha256, len(bf.entries), changed, skipped, version, committed)


def retract_entries(lake: Lake, bank: str, file_or_ids: str) -> BankChange:
    """Retract entries of ``bank``: a bank CSV file (by hash) or comma-separated external ids.

    Every hash or id must be live in the bank, else nothing is retracted (one-line error).
    """
    check_bank_id(bank)
    path = Path(file_or_ids)
    if path.is_file():
        bf = read_bank_csv(path)
        keys: list[object] = [e.pdq for e in bf.entries]
        column, sha, what = "pdq", bf.sha256, f"bank file {path}"
    else:
        ids = sorted({s.strip() for s in file_or_ids.split(",") if s.strip()})
        if not ids:
            raise BadInputError(f"retract: '{file_or_ids}' is neither a file nor a list of external ids (id1,id2,...)")
        keys, column, what = list(ids), "external_id", "ids given"
        sha = hashlib.sha256("\n".join(ids).encode()).hexdigest()

    def rows(existing: pl.DataFrame, version: int) -> tuple[pa.Table, int]:
        hit = live_entries(existing).filter(pl.col(column).is_in(keys))
        found = set(hit[column].to_list())
        missing = [k for k in keys if k not in found]
        if missing:
            # Ids, or the first hex digits of a hash: enough to find the line, not a usable hash.
            shown = ", ".join(k.hex()[:12] + "..." if isinstance(k, bytes) else str(k) for k in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise BadInputError(
                f"retract: {len(missing)} of the {len(keys)} entries of the {what} are not live in bank {bank} "
                f"({shown}{more}); nothing was retracted: check the bank name and the entries (batchjobs hashes list)"
            )
        ext, src = hit["external_id"].to_list(), hit["source"].to_list()
        return _rows(bank, hit["pdq"].to_list(), ext, src, version, sha, retracted=True), 0

    committed, version, changed, _ = _apply(lake, bank, f"{TABLE}/{bank}/retract/{sha}", rows)
    return BankChange(bank, "retract", sha, len(keys), changed, 0, version, committed)


def bank_infos(lake: Lake) -> list[BankInfo]:
    """One :class:`BankInfo` per bank, by bank id."""
    rows = read_banks(lake)
    out = []
    for bank in sorted(set(rows["bank_id"].to_list())):
        own = rows.filter(pl.col("bank_id") == bank)
        live = live_entries(own).height
        retracted_now = own.select("pdq").unique().height - live
        out.append(BankInfo(bank, live, retracted_now, list_version(own), own["added_at"].max()))  # type: ignore[arg-type]
    return out
