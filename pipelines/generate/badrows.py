"""Malformed rows, one kind after another, so every later stage meets each failure mode.

Bad rows have NO ground-truth rows: they are not content to be labelled but inputs that
preprocessing must reject into ``dead_letters``. Their kind is derivable from the content id
(``bad-<kind>-<seed tag>-<n>``, see :func:`bad_row_kind`), except for two kinds that cannot
carry it:

* ``null_content_id``: the id is null. Every other column is normal (a TEXT row).
* ``duplicate_content_id``: an exact re-ingest of a good row of the same batch (same id, same
  content), so the good row's ground truth still holds whichever copy a reader keeps. The
  summary counts them; a reader finds them as ids that occur more than once.
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import Any

BAD_ROW_KINDS: tuple[str, ...] = (
    "corrupt_image",
    "truncated_image",
    "empty_image",
    "decompression_bomb",
    "empty_text",
    "oversized_text",
    "invalid_utf8",
    "unknown_region",
    "null_content_id",
    "duplicate_content_id",
    "broken_frame",
)
BAD_PREFIX = "bad-"
# Kinds whose rows cannot say their kind through their content id (see module docstring).
UNTAGGED_KINDS: frozenset[str] = frozenset({"null_content_id", "duplicate_content_id"})
UNKNOWN_REGION = "XX"
OVERSIZED_TEXT_BYTES = 1_200_000  # over 1 MB: more than any text model's context, and than many row limits
BOMB_SIDE = 100_000  # declared width and height: 10^10 pixels, far above PIL's MAX_IMAGE_PIXELS


def bad_row_kind(content_id: str | None) -> str | None:
    """The bad-row kind a content id names, or None for good ids (and for the untagged kinds)."""
    if content_id is None or not content_id.startswith(BAD_PREFIX):
        return None
    kind = content_id[len(BAD_PREFIX) :].split("-", 1)[0]
    return kind if kind in BAD_ROW_KINDS else None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A tiny, well-formed PNG whose header declares ``side`` x ``side`` RGB pixels.

    Decoders that trust the header allocate ~30 GB; PIL refuses it (DecompressionBombError).
    """
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# What "invalid UTF-8" becomes in a table. Arrow (and so Delta/Parquet) string columns must
# hold valid UTF-8, so lone surrogates or stray continuation bytes cannot be stored at all:
# writing them fails. The nearest storable text that still breaks naive text pipelines is
# what a lenient decoder leaves behind: replacement characters, C0 control characters, lone
# combining marks with no base, zero-width and bidi controls - no word a tokenizer keeps.
UNDECODABLE_TEXT = "\ufffd\x00\x01\x07\x1b\u0301\u0308\u200b\u202e\ufffd\x7f\u0336\u200d\x0c"


def _oversized_text(rnd: random.Random) -> str:
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
    unit = " ".join(rnd.choice(words) for _ in range(64)) + ". "
    return unit * (OVERSIZED_TEXT_BYTES // len(unit) + 1)


def make_bad_row(
    kind: str, row_id: str, base: dict[str, Any], good: dict[str, Any], image: bytes, rnd: random.Random
) -> dict[str, Any]:
    """One bad row of ``kind`` built from ``base`` (a normal-looking row) or ``good`` (duplicates).

    ``base`` and ``good`` are backlog rows as dicts (neither is modified); ``image`` is a valid
    encoded image that truncated images and the good frames of a broken video start from.
    """
    if kind == "duplicate_content_id":
        return dict(good)
    row = dict(base)
    row["content_id"] = None if kind == "null_content_id" else row_id
    if kind in ("corrupt_image", "truncated_image", "empty_image", "decompression_bomb"):
        row.update(content_type="IMAGE", frames=None)
        row["image"] = {
            "corrupt_image": b"\x00GARBAGE" + rnd.randbytes(200),
            "truncated_image": image[: max(8, len(image) // 2)],
            "empty_image": b"",
            "decompression_bomb": decompression_bomb_png(),
        }[kind]
    elif kind == "broken_frame":
        frames = [image] * rnd.randint(2, 7)
        frames.insert(rnd.randint(0, len(frames)), b"\xff\xd8\xff\xe0" + rnd.randbytes(64))  # JPEG magic, then noise
        row.update(content_type="VIDEO", image=None, frames=frames)
    elif kind in ("empty_text", "oversized_text", "invalid_utf8"):
        text = {"empty_text": "", "oversized_text": _oversized_text(rnd), "invalid_utf8": UNDECODABLE_TEXT}[kind]
        row.update(content_type="TEXT", text=text, image=None, frames=None)
    elif kind == "unknown_region":
        row.update(region=UNKNOWN_REGION, markets=[UNKNOWN_REGION])
    return row
