"""PDQ hashing and the 64-hex form: bit order, round trips, decode-once helpers."""

from __future__ import annotations

import io
import random

import numpy as np
import pdqhash
import pyarrow as pa
import pytest
from PIL import Image

from pipelines.errors import BadInputError
from pipelines.generate.known_media import draw_known
from pipelines.hashes import (
    DIHEDRAL_NAMES,
    MAX_SIDE,
    as_array,
    bits_to_bytes,
    bytes_to_bits,
    decode,
    distance,
    for_hashing,
    from_arrow,
    from_hex,
    hash_bytes,
    hash_dihedral,
    hash_frames,
    hash_image,
    to_hex,
)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_hex_is_the_bits_in_order_first_bit_most_significant() -> None:
    """ThreatExchange's hasher: ``int(''.join(bits), 2)`` as 64 hex digits. Ours must be the same string."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        bits = rng.integers(0, 2, 256)
        expected = format(int("".join(str(b) for b in bits), 2), "064x")
        h = bits_to_bytes(bits)
        assert to_hex(h) == expected
        assert from_hex(expected.upper()) == h
        assert np.array_equal(bytes_to_bits(h), bits)
    one_first = np.zeros(256, dtype=np.int64)
    one_first[0] = 1
    assert to_hex(bits_to_bytes(one_first)) == "8" + "0" * 63


def test_hash_matches_pdqhash_bits() -> None:
    img = draw_known("gun_silhouette", random.Random(1))
    bits, quality = pdqhash.compute(np.asarray(img))
    h = hash_image(img)
    assert h.hash == bits_to_bytes(bits) and h.quality == quality and h.hex == to_hex(h.hash)
    assert hash_bytes(_png(img)) == h


@pytest.mark.parametrize("text", ["0" * 63, "0" * 65, "g" + "0" * 63, " " + "0" * 63, ""])
def test_from_hex_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="PDQ hex"):
        from_hex(text)


def test_as_array_and_distance() -> None:
    a, b = bytes(32), bytes([0xFF] + [0] * 31)
    arr = as_array([a, b])
    assert arr.shape == (2, 32) and arr.dtype == np.uint8 and arr[1, 0] == 0xFF
    assert distance(a, b) == 8 and distance(b, b) == 0
    with pytest.raises(ValueError, match="32 bytes"):
        as_array([b"x" * 31])


def test_large_images_are_resized_to_at_most_512_px() -> None:
    img = Image.new("RGB", (1600, 1000))
    small = for_hashing(img)
    assert max(small.size) == MAX_SIDE and small.size == (512, 320)
    tiny = Image.new("L", (40, 30))
    assert for_hashing(tiny).size == (40, 30) and for_hashing(tiny).mode == "RGB"


def test_flat_image_has_quality_zero() -> None:
    assert hash_image(Image.new("RGB", (128, 128), (90, 90, 90))).quality == 0


def test_dihedral_and_frames() -> None:
    img = draw_known("blade_silhouette", random.Random(3))
    variants = hash_dihedral(img)
    assert len(variants) == len(DIHEDRAL_NAMES) == 8
    assert variants[0].hash == hash_image(img).hash
    frames = hash_frames([_png(img), img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert frames[0].hash == variants[0].hash
    assert min(distance(frames[1].hash, v.hash) for v in variants) < 32


def test_decode_refuses_non_images() -> None:
    with pytest.raises(BadInputError, match="could not be decoded"):
        decode(b"not an image at all")
    assert decode(_png(Image.new("LA", (20, 10)))).mode == "RGB"


def test_from_arrow_reads_binary32_columns_without_copies_per_row() -> None:
    rows = [bytes([k]) * 32 for k in range(5)]
    col = pa.array(rows, type=pa.binary(32))
    assert np.array_equal(from_arrow(col), as_array(rows))
    assert np.array_equal(from_arrow(col.slice(2, 2)), as_array(rows[2:4]))
    chunked = pa.chunked_array([col.slice(0, 2), col.slice(3, 2)])
    assert np.array_equal(from_arrow(chunked), as_array(rows[:2] + rows[3:]))
    assert np.array_equal(from_arrow(pa.array(rows, type=pa.binary())), as_array(rows))
    assert from_arrow(pa.chunked_array([], type=pa.binary(32))).shape == (0, 32)
    with pytest.raises(ValueError, match="nulls"):
        from_arrow(pa.array([rows[0], None], type=pa.binary(32)))
    with pytest.raises(ValueError, match="binary"):
        from_arrow(pa.array(["x"]))
