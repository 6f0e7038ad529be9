"""Bank CSV files: good files parse; every kind of bad file gives one line naming the line, and no entries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipelines.errors import BadInputError
from pipelines.hashes import parse_bank_csv, read_bank_csv

H1 = "f8f8f0cce0f4e84d0e370a22028f67f0b36e2ed596623e1d33e6339c4e9c9b22"
H2 = "ad64cd9875e131a177b1f2a0d6b38ae1de9ea80421e4c51dde1b0363deba3466"
H3 = "0" * 63 + "1"


def test_good_file_with_optional_columns(tmp_path: Path) -> None:
    data = f"\ufeffid, PDQ ,source,tags\nx1,{H1},ncmec,a\n\n,{H2.upper()},,\n".encode()
    path = tmp_path / "bank.csv"
    path.write_bytes(data)
    bank = read_bank_csv(path)
    assert bank.sha256 == hashlib.sha256(data).hexdigest()
    assert [(e.pdq.hex(), e.external_id, e.source, e.line) for e in bank.entries] == [
        (H1, "x1", "ncmec", 2),
        (H2, None, None, 4),
    ]


def test_pdq_column_alone() -> None:
    bank = parse_bank_csv(f"pdq\n{H1}\n{H3}\n".encode())
    assert [e.pdq.hex() for e in bank.entries] == [H1, H3]
    assert all(e.external_id is None and e.source is None for e in bank.entries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"bank file: is empty"),
        ("\n  \n", r"is empty"),
        ("id,source\nx,y\n", r"line 1: no 'pdq' column"),
        ("pdq,id,pdq\n" + H1 + ",a," + H2 + "\n", r"line 1: column 'pdq' appears twice"),
        ("pdq,id\n", r"has a header but no hashes"),
        (f"pdq,id\n{H1},a\n{H2[:-1]},b\n", r"line 3: pdq '[0-9a-f]{63}' has 63 characters, expected 64 hex digits"),
        (f"pdq,id\n{H1}0,a\n", r"line 2: pdq .* has 65 characters"),
        (f"pdq,id\n{H1},a\nzz{H2[2:]},b\n", r"line 3: pdq .* is not hexadecimal \('z' at character 1\)"),
        (f"pdq,id\n{H1},a\n,b\n", r"line 3: empty pdq"),
        (f"pdq,id\n{H1},a\n{H2},b\n{H1.upper()},c\n", r"line 4: pdq repeats the hash of line 2"),
        (f"pdq,id\n{H1},a,extra\n", r"line 2: 3 fields, the header has 2"),
        (f'pdq,id\n{H1},"unclosed\n', r"line \d+: not valid CSV"),
    ],
)
def test_bad_files_raise_one_line(text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message) as err:
        parse_bank_csv(text.encode())
    assert "\n" not in str(err.value)


def test_every_bad_line_is_counted_and_nothing_returned() -> None:
    text = f"pdq\n{H1}\nnothex\n{H2}\n{H1}\n{H3}\n"
    with pytest.raises(BadInputError, match=r"line 3: .* \(and 1 more bad lines\); fix the file"):
        parse_bank_csv(text.encode())


def test_non_utf8_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"line 3: not UTF-8"):
        parse_bank_csv(f"pdq,id\n{H1},a\n{H2},\xff\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"cannot be read"):
        read_bank_csv(tmp_path / "missing.csv")
