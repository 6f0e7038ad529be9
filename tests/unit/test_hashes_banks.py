"""hash_banks: `batchjobs hashes import/retract/list`: validation, exactly once, list versions, retractions."""

from __future__ import annotations

import secrets
from pathlib import Path

import polars as pl
import pytest

from batchjobs import cli
from pipelines.hashes.banks import bank_infos, live_entries, read_banks
from pipelines.lake import open_lake

H = [secrets.token_hex(32) for _ in range(6)]


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


BAD_FILES: dict[str, tuple[bytes | str, str]] = {
    "empty": ("", "is empty"),
    "no pdq column": ("id,hash\nx,y\n", "line 1: no 'pdq' column in the header"),
    "pdq twice": ("pdq,pdq\na,b\n", "line 1: column 'pdq' appears twice in the header"),
    "header only": ("id,pdq\n", "has a header but no hashes"),
    "field count": (f"id,pdq\na,{H[0]},extra\n", "line 2: 3 fields, the header has 2"),
    "empty pdq": ("id,pdq\na,\n", "line 2: empty pdq"),
    "short": (f"id,pdq\na,{H[0][:63]}\n", "line 2: pdq '" + H[0][:63] + "' has 63 characters, expected 64 hex digits"),
    "not hex": (f"id,pdq\na,{'z' + H[0][1:]}\n", "is not hexadecimal ('z' at character 1)"),
    "repeated": (f"id,pdq\na,{H[0]}\nb,{H[0].upper()}\n", "line 3: pdq repeats the hash of line 2"),
    "not utf-8": (b"id,pdq\n\xff\xfe," + H[0].encode() + b"\n", "line 2: not UTF-8 text"),
    "bad quoting": (f'id,pdq\n"a,{H[0]}\n', "not valid CSV"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_bank_file_one_line_nothing_imported(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_FILES[kind]
    lake = tmp_path / "lake"
    code, out, err = run(capsys, "hashes", "import", "--lake", str(lake), "--bank", "known_csam",
                         write(tmp_path / "b.csv", text))  # fmt: skip
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("batchjobs hashes: error: bank file ") and expected in err, err
    assert read_banks(open_lake(str(lake))).height == 0


def test_bad_bank_name_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "a.csv", f"pdq\n{H[0]}\n")
    code, _, err = run(capsys, "hashes", "import", "--lake", str(tmp_path / "l"), "--bank", "Known CSAM", good)
    assert code == 2 and "is not a bank id" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "hashes", "import", "--lake", str(tmp_path / "l"), "--bank", "b", str(tmp_path / "no"))
    assert code == 2 and "cannot be read" in err and len(err.strip().splitlines()) == 1


def test_import_once_versions_duplicates_retract_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = str(tmp_path / "lake")
    a = write(tmp_path / "a.csv", "id,pdq,source\n" + "".join(f"e{i},{H[i]},ncmec\n" for i in range(3)))
    b = write(tmp_path / "b.csv", "id,pdq\n" + "".join(f"e{i},{H[i]}\n" for i in range(2, 5)))
    code, out, _ = run(capsys, "hashes", "import", "--lake", lake, "--bank", "known_csam", a)
    assert code == 0 and "3 of 3 entries added" in out and "list version 1" in out
    code, out, _ = run(capsys, "hashes", "import", "--lake", lake, "--bank", "known_csam", a)  # same content again
    assert code == 0 and "already applied; nothing changed (list version 1)" in out
    code, out, _ = run(capsys, "hashes", "import", "--lake", lake, "--bank", "known_csam", b)
    assert "2 of 3 entries added, 1 already in the bank; list version 2" in out
    # The same file into another bank is another import.
    assert run(capsys, "hashes", "import", "--lake", lake, "--bank", "known_terror", a)[0] == 0
    rows = read_banks(open_lake(lake), "known_csam")
    assert rows.height == 5 and sorted(rows["list_version"].to_list()) == [1, 1, 1, 2, 2]
    assert rows.filter(pl.col("external_id") == "e0")["source"].to_list() == ["ncmec"]

    # Retract by ids: rows with retracted=True, the next list version; unknown ids retract nothing.
    code, _, err = run(capsys, "hashes", "retract", "--lake", lake, "--bank", "known_csam", "e0,nope")
    assert code == 2 and "1 of the 2 entries" in err and "nothing was retracted" in err
    code, out, _ = run(capsys, "hashes", "retract", "--lake", lake, "--bank", "known_csam", "e0,e3")
    assert code == 0 and "2 of 2 entries retracted; list version 3" in out
    assert "lifted 0 hash-match decisions" in out
    code, out, _ = run(capsys, "hashes", "retract", "--lake", lake, "--bank", "known_csam", "e0,e3")
    assert "already applied" in out
    # Retract by file (hash e4), then import e0 again: live again.
    code, out, _ = run(capsys, "hashes", "retract", "--lake", lake, "--bank", "known_csam",
                       write(tmp_path / "r.csv", f"pdq\n{H[4]}\n"))  # fmt: skip
    assert "1 of 1 entries retracted; list version 4" in out
    code, out, _ = run(capsys, "hashes", "import", "--lake", lake, "--bank", "known_csam",
                       write(tmp_path / "c.csv", f"id,pdq\ne0,{H[0]}\n"))  # fmt: skip
    assert "1 of 1 entries added" in out and "list version 5" in out
    rows = read_banks(open_lake(lake), "known_csam")
    assert set(live_entries(rows)["external_id"]) == {"e0", "e1", "e2"}
    assert set(live_entries(rows, at=3)["external_id"]) == {"e1", "e2", "e4"}
    assert set(live_entries(rows, after=1)["external_id"]) == {"e0"}

    infos = {i.bank: i for i in bank_infos(open_lake(lake))}
    assert (infos["known_csam"].live, infos["known_csam"].retracted, infos["known_csam"].list_version) == (3, 2, 5)
    code, out, _ = run(capsys, "hashes", "list", "--lake", lake)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["bank", "live", "retracted", "version"]
    assert lines[1].split()[:4] == ["known_csam", "3", "2", "5"]
    assert lines[2].split()[:4] == ["known_terror", "3", "0", "1"]
    assert H[0] not in out  # hash values are never printed
