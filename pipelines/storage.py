"""Files (not tables) in a lake: a local folder or an object-store URI such as ``s3://bucket/prefix``.

Tables are written by deltalake through :mod:`pipelines.sink`; this module is for the other
files a job leaves in a lake, the report folders. It uses pyarrow's file systems, which read
credentials and endpoint from the same standard environment variables as deltalake and polars
(for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``), so a job that can read the lake's tables can write its
reports next to them.

Object stores have no folders: :func:`makedirs` is a no-op there, and a "folder" exists once a
file is written under it. Every file is written in one PUT, so a reader never sees half a file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import pyarrow.fs as pafs

_COPY_BLOCK = 8 << 20


def is_remote(uri: str) -> bool:
    """True for an object-store URI (``s3://``, ``gs://``, ``abfss://``...), False for a path or ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The local path of ``uri`` (a path or ``file://`` URI); raises ValueError for an object-store URI."""
    if is_remote(uri):
        raise ValueError(f"{uri} is not a local path")
    return Path(uri.removeprefix("file://"))


def join(base: str, *names: str) -> str:
    """``base/name/...`` for a path or a URI (``Path`` would turn ``s3://b`` into ``s3:/b``)."""
    return "/".join([base.rstrip("/"), *(n.strip("/") for n in names)])


def _remote(uri: str) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def makedirs(uri: str) -> None:
    """Create the folder ``uri`` and its parents (local); nothing to do on an object store."""
    if not is_remote(uri):
        local_path(uri).mkdir(parents=True, exist_ok=True)


def exists(uri: str) -> bool:
    """Whether a file or folder exists at ``uri`` (on an object store: an object or a prefix)."""
    if not is_remote(uri):
        return local_path(uri).exists()
    import pyarrow.fs as pafs

    fs, path = _remote(uri)
    return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to the file ``uri`` (replacing it), creating local parent folders."""
    if not is_remote(uri):
        p = local_path(uri)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return
    fs, path = _remote(uri)
    with fs.open_output_stream(path) as out:
        out.write(data)


def write_text(uri: str, text: str) -> None:
    """Write ``text`` as UTF-8 to the file ``uri``."""
    write_bytes(uri, text.encode("utf-8"))


def read_bytes(uri: str) -> bytes:
    """The content of the file ``uri``."""
    if not is_remote(uri):
        return local_path(uri).read_bytes()
    fs, path = _remote(uri)
    with fs.open_input_stream(path) as f:
        return bytes(f.read())


def copy_into(uri: str, out: BinaryIO) -> None:
    """Append the content of the file ``uri`` to the open binary file ``out``, streaming."""
    if not is_remote(uri):
        with open(local_path(uri), "rb") as src:
            shutil.copyfileobj(src, out, _COPY_BLOCK)
        return
    fs, path = _remote(uri)
    with fs.open_input_stream(path) as stream:
        while block := stream.read(_COPY_BLOCK):
            out.write(block)


def remove_tree(uri: str) -> None:
    """Delete the folder ``uri`` and everything under it (nothing if absent)."""
    if not is_remote(uri):
        shutil.rmtree(local_path(uri), ignore_errors=True)
        return
    import pyarrow.fs as pafs

    fs, path = _remote(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def upload_file(local: str | Path, uri: str) -> None:
    """Copy the local file ``local`` to ``uri`` (a path or an object-store URI), streaming."""
    if not is_remote(uri):
        dst = local_path(uri)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, dst)
        return
    fs, path = _remote(uri)
    with open(local, "rb") as src, fs.open_output_stream(path) as out:
        while block := src.read(_COPY_BLOCK):
            out.write(block)


@contextmanager
def staged_dir(uri: str) -> Iterator[Path]:
    """A local folder whose files end up under ``uri`` when the block exits without an error.

    For a local ``uri`` this is the folder itself (created); for an object-store URI it is a
    temporary folder whose files are uploaded to ``uri/<relative path>`` and then deleted, so
    writers that need a real file (polars, open()) write reports to either kind of lake alike.
    """
    if not is_remote(uri):
        folder = local_path(uri)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="trustbatch-upload-") as tmp:
        yield Path(tmp)
        for f in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            upload_file(f, join(uri, f.relative_to(tmp).as_posix()))


__all__ = [
    "copy_into",
    "exists",
    "is_remote",
    "join",
    "local_path",
    "makedirs",
    "read_bytes",
    "remove_tree",
    "staged_dir",
    "upload_file",
    "write_bytes",
    "write_text",
]
