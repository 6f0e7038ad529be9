"""pipelines.storage on local paths (the S3 side runs against an S3 server in tests/integration/test_s3_lake.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import storage


def test_join_keeps_uri_schemes() -> None:
    assert storage.join("s3://b/p/", "reports", "x.json") == "s3://b/p/reports/x.json"
    assert storage.join("/tmp/lake", "/reports/") == "/tmp/lake/reports"


@pytest.mark.parametrize(
    ("uri", "remote"),
    [("/a/b", False), ("rel/b", False), ("file:///a", False), ("s3://b/p", True), ("gs://b", True)],
)
def test_is_remote(uri: str, remote: bool) -> None:
    assert storage.is_remote(uri) is remote


def test_local_write_read_exists(tmp_path: Path) -> None:
    target = f"file://{tmp_path}/deep/er/x.txt"
    assert not storage.exists(target)
    storage.write_text(target, "héllo")
    assert storage.exists(target)
    assert storage.read_bytes(target) == "héllo".encode()
    storage.makedirs(str(tmp_path / "made" / "here"))
    assert (tmp_path / "made" / "here").is_dir()


def test_staged_dir_on_a_local_folder_is_the_folder(tmp_path: Path) -> None:
    with storage.staged_dir(str(tmp_path / "out")) as folder:
        assert folder == tmp_path / "out"
        (folder / "a.txt").write_text("a")
    assert (tmp_path / "out" / "a.txt").read_text() == "a"


def test_staged_dir_uploads_only_on_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uploaded: list[tuple[str, bytes]] = []
    monkeypatch.setattr(storage, "upload_file", lambda local, uri: uploaded.append((uri, Path(local).read_bytes())))
    with storage.staged_dir("s3://bucket/reports/r1") as folder:
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("b")
        (folder / "a.txt").write_text("a")
    assert uploaded == [("s3://bucket/reports/r1/a.txt", b"a"), ("s3://bucket/reports/r1/sub/b.txt", b"b")]
    uploaded.clear()
    with pytest.raises(RuntimeError), storage.staged_dir("s3://bucket/reports/r2") as folder:
        (folder / "a.txt").write_text("a")
        raise RuntimeError("writer failed")
    assert uploaded == []
    assert not folder.exists()
