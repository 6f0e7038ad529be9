"""PDQ hashes of images and keyframes: decode once, resize to at most 512 px, hash.

The reference C++ hasher downsizes large photos to at most 512 px before hashing; doing the same
costs little accuracy (a 1600x1004 photo moved by 4-6 bits) and makes a large photo ~6x cheaper.
Quality (0-100) comes with every hash; PDQ's guidance is not to match quality below 50 (flat or
nearly flat images), which ``pipelines.hashes.matcher`` enforces.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pdqhash
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.errors import BadInputError
from pipelines.hashes.codec import bits_to_bytes, to_hex

MAX_SIDE = 512
"""Images are resized so that their longer side is at most this many pixels before hashing."""

DIHEDRAL_NAMES: tuple[str, ...] = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_x",
    "flip_y",
    "flip_plus1",
    "flip_minus1",
)
"""The eight variants of ``hash_dihedral``, in ``pdqhash.compute_dihedral``'s order."""


@dataclass(frozen=True)
class PdqHash:
    """One PDQ hash: 32 bytes (first bit most significant) and its quality, 0-100."""

    hash: bytes
    """256 bits packed as in ``pipelines.hashes.codec``."""
    quality: int
    """PDQ's quality metric: 0 for a flat image; below 50 is never matched."""

    @property
    def hex(self) -> str:
        """The 64-hex-character form banks exchange."""
        return to_hex(self.hash)


def decode(data: bytes) -> Image.Image:
    """Decode image bytes (any format PIL reads) to RGB, honouring the EXIF orientation.

    Raises ``BadInputError`` when the bytes are not an image.
    """
    try:
        opened = Image.open(io.BytesIO(data))
        opened.load()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadInputError(f"image of {len(data)} bytes could not be decoded ({err}); is it an image?") from err
    img: Image.Image = ImageOps.exif_transpose(opened) or opened
    return img.convert("RGB") if img.mode != "RGB" else img


def for_hashing(img: Image.Image) -> Image.Image:
    """``img`` in RGB with its longer side at most ``MAX_SIDE`` (a copy when resized; never enlarged)."""
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    longer = max(rgb.size)
    if longer <= MAX_SIDE:
        return rgb
    scale = MAX_SIDE / longer
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def hash_image(img: Image.Image) -> PdqHash:
    """The PDQ hash of an already decoded image (resized to at most ``MAX_SIDE`` first)."""
    bits, quality = pdqhash.compute(np.asarray(for_hashing(img)))
    return PdqHash(bits_to_bytes(bits), int(quality))


def hash_bytes(data: bytes) -> PdqHash:
    """Decode image bytes once and hash them."""
    return hash_image(decode(data))


def hash_dihedral(img: Image.Image) -> tuple[PdqHash, ...]:
    """The 8 hashes of ``img``'s rotations and flips (``DIHEDRAL_NAMES`` order; one quality for all).

    A mirrored or rotated copy of a known image has one of these within a few bits of the known
    hash, which is how mirrored copies are matched against a bank of plain hashes.
    """
    variants, quality = pdqhash.compute_dihedral(np.asarray(for_hashing(img)))
    return tuple(PdqHash(bits_to_bytes(bits), int(quality)) for bits in variants)


def hash_frames(frames: Sequence[bytes | Image.Image]) -> tuple[PdqHash, ...]:
    """One hash per keyframe (encoded bytes or decoded images), in order: frame index = position."""
    return tuple(hash_image(f) if isinstance(f, Image.Image) else hash_bytes(f) for f in frames)
