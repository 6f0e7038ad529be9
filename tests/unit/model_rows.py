"""Backlog rows for model tests: good ones and one of each kind of bad row."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image


def png(w: int = 40, h: int = 30, colour: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def jpeg(w: int = 64, h: int = 48, colour: tuple[int, int, int] = (10, 120, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "JPEG")
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR declares w x h (valid CRC) and whose pixel data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


GOOD: list[dict[str, Any]] = [
    {"content_type": "TEXT", "text": "Limited offer: send your bank password to win a prize"},
    {"content_type": "IMAGE", "text": None, "image": png()},
    {"content_type": "IMAGE", "text": "holiday photo", "image": jpeg()},
    {"content_type": "VIDEO", "text": "clip", "frames": [png(colour=(i * 40, 0, 0)) for i in range(6)]},
    {"content_type": "TEXT", "text": "Ein kurzer deutscher Satz über das Wetter."},
]

# (row, expected error_class, a word the message must contain)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"content_type": "IMAGE", "image": b"this is not an image"}, "ImageDecodeError", "image"),
    ({"content_type": "IMAGE", "image": png(64, 64)[:60]}, "ImageDecodeError", "truncated"),
    ({"content_type": "IMAGE", "image": b""}, "EmptyImage", "zero-byte"),
    ({"content_type": "IMAGE", "image": png_header_only(100_000, 100_000)}, "DecompressionBombError", "image"),
    ({"content_type": "IMAGE", "image": png_header_only(8000, 6000)}, "DecompressionBombError", "48000000"),
    ({"content_type": "VIDEO", "frames": [png(), b"garbage", png()]}, "ImageDecodeError", "frame 1"),
    ({"content_type": "VIDEO", "frames": []}, "EmptyContent", "VIDEO"),
    ({"content_type": "TEXT", "text": ""}, "EmptyContent", "TEXT"),
    ({"content_type": "TEXT", "text": "   \n"}, "EmptyContent", "TEXT"),
    ({"content_type": "TEXT", "text": None}, "EmptyContent", "TEXT"),
    ({"content_type": "TEXT", "text": "a" * 100_001}, "OversizedText", "100001"),
]


def batch(rows: list[dict[str, Any]], language: str = "en") -> dict[str, list[Any]]:
    """Rows as a column batch (INPUT_COLUMNS), with ids r0, r1, ..."""
    return {
        "content_id": [f"r{i}" for i in range(len(rows))],
        "content_type": [r.get("content_type") for r in rows],
        "language": [r.get("language", language) for r in rows],
        "text": [r.get("text") for r in rows],
        "image": [r.get("image") for r in rows],
        "frames": [r.get("frames") for r in rows],
    }


def mixed_batch() -> tuple[dict[str, list[Any]], list[int], dict[int, tuple[str, str]]]:
    """Good and bad rows interleaved: (batch, good indices, bad index -> (class, word))."""
    rows: list[dict[str, Any]] = []
    good: list[int] = []
    bad: dict[int, tuple[str, str]] = {}
    for i in range(max(len(GOOD), len(BAD))):
        if i < len(GOOD):
            good.append(len(rows))
            rows.append(GOOD[i])
        if i < len(BAD):
            bad[len(rows)] = BAD[i][1:]
            rows.append(BAD[i][0])
    return batch(rows), good, bad
