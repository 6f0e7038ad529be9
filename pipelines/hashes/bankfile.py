"""Bank files: the CSV a team imports into a hash bank, validated line by line.

Format: UTF-8 (a byte-order mark is allowed), RFC 4180 CSV, a header line naming the columns.
``pdq`` (required) holds the 64-hex-character hash; ``id`` (optional) an external id, for example
the list owner's id for the entry; ``source`` (optional) where the entry came from. Other columns
are ignored. Column names are matched without regard to case or surrounding spaces. Blank lines
are skipped.

Every line is checked (wrong field count, empty/short/long/non-hex hash, a hash repeated within
the file) before anything is returned: a bad file raises one ``BadInputError`` whose one-line
message names the first bad line, its problem and how many other lines are bad, and nothing of
the file is used.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipelines.errors import BadInputError
from pipelines.hashes.codec import hex_problem

REQUIRED_COLUMN = "pdq"
OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "source")


class _Reader(Protocol):
    """What we use of ``csv.reader``: rows and the current line number."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


@dataclass(frozen=True)
class BankEntry:
    """One line of a bank file."""

    pdq: bytes
    """The 32-byte hash."""
    external_id: str | None
    """The ``id`` column, None when absent or empty."""
    source: str | None
    """The ``source`` column, None when absent or empty."""
    line: int
    """Line number in the file (1 is the header)."""


@dataclass(frozen=True)
class BankFile:
    """A validated bank file."""

    entries: tuple[BankEntry, ...]
    """In file order, no two with the same hash."""
    sha256: str
    """SHA-256 of the file's bytes: what makes an import exactly once per file content."""


def read_bank_csv(path: str | Path) -> BankFile:
    """Read and validate the bank file at ``path`` (see the module docstring for the format)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise BadInputError(f"bank file {p}: cannot be read ({err.strerror}); check the path") from err
    return parse_bank_csv(data, name=f"bank file {p}")


def parse_bank_csv(data: bytes, *, name: str = "bank file") -> BankFile:
    """Validate bank-file bytes. Raises ``BadInputError`` (one line, with line numbers) on any problem."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BadInputError(f"{name}: line {line}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from err
    if not text.strip():
        raise BadInputError(f"{name}: is empty; expected a header line with a '{REQUIRED_COLUMN}' column, then hashes")

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[str] = []
    try:
        header = _header(next(reader), name)
        entries = _entries(reader, header, problems)
    except csv.Error as err:
        raise BadInputError(f"{name}: line {reader.line_num}: not valid CSV ({err})") from err
    if problems:
        more = f" (and {len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
        raise BadInputError(f"{name}: {problems[0]}{more}; fix the file and import it again, nothing was imported")
    if not entries:
        raise BadInputError(f"{name}: has a header but no hashes; add one line per hash")
    return BankFile(tuple(entries), hashlib.sha256(data).hexdigest())


def _header(row: list[str], name: str) -> dict[str, int]:
    """Column name -> position, for the columns we read. Raises on a missing or repeated column."""
    names = [c.strip().lower() for c in row]
    seen: dict[str, int] = {}
    for pos, col in enumerate(names):
        if col in seen and col in (REQUIRED_COLUMN, *OPTIONAL_COLUMNS):
            raise BadInputError(f"{name}: line 1: column '{col}' appears twice in the header")
        seen.setdefault(col, pos)
    if REQUIRED_COLUMN not in seen:
        shown = ", ".join(repr(c) for c in row[:8])
        raise BadInputError(
            f"{name}: line 1: no '{REQUIRED_COLUMN}' column in the header ({shown}); the first line must name the "
            f"columns: {REQUIRED_COLUMN} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    return {"width": len(row)} | {c: seen[c] for c in (REQUIRED_COLUMN, *OPTIONAL_COLUMNS) if c in seen}


def _entries(reader: _Reader, header: dict[str, int], problems: list[str]) -> list[BankEntry]:
    width = header["width"]
    first_line: dict[bytes, int] = {}
    entries: list[BankEntry] = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != width:
            problems.append(f"line {line}: {len(row)} fields, the header has {width}")
            continue
        hex_text = row[header[REQUIRED_COLUMN]].strip()
        if not hex_text:
            problems.append(f"line {line}: empty {REQUIRED_COLUMN}")
            continue
        problem = hex_problem(hex_text)
        if problem is not None:
            problems.append(f"line {line}: {REQUIRED_COLUMN} {hex_text[:70]!r} {problem}")
            continue
        pdq = bytes.fromhex(hex_text)
        if pdq in first_line:
            problems.append(f"line {line}: {REQUIRED_COLUMN} repeats the hash of line {first_line[pdq]}")
            continue
        first_line[pdq] = line
        entries.append(BankEntry(pdq, _optional(row, header, "id"), _optional(row, header, "source"), line))
    return entries


def _optional(row: list[str], header: dict[str, int], column: str) -> str | None:
    if column not in header:
        return None
    value = row[header[column]].strip()
    return value or None
