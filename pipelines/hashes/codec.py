"""PDQ hashes as bytes, bits and the 64-hex-character form banks exchange.

The hex form is the one ThreatExchange and HMA exchange: the 256 bits of ``pdqhash.compute`` in
order, 4 bits per hex digit, first bit most significant. The 32 bytes we store are the same bits
packed the same way (first bit = most significant bit of byte 0), so ``to_hex(h) == h.hex()``.
Checked against ThreatExchange's own data: its PDQ hasher test image hashes to its expected hex
exactly through this packing, and the reference C++ hash of its bridge photo is 4 bits away (the
resize differs); the reversed bit order is 136 bits away.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

HASH_BITS = 256
HASH_BYTES = 32
HEX_CHARS = 64
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """Pack 256 bits (0/1, any integer dtype, in pdqhash's order) into 32 bytes, first bit most significant."""
    arr = np.asarray(bits)
    if arr.shape != (HASH_BITS,):
        raise ValueError(f"a PDQ hash has {HASH_BITS} bits, got shape {arr.shape}")
    return np.packbits(arr.astype(np.uint8, copy=False)).tobytes()


def bytes_to_bits(h: bytes) -> np.ndarray:
    """The 256 bits (uint8 0/1) of a 32-byte hash, in pdqhash's order."""
    _check_bytes(h)
    return np.unpackbits(np.frombuffer(h, dtype=np.uint8))


def to_hex(h: bytes) -> str:
    """The 64-character lowercase hex form of a 32-byte hash."""
    _check_bytes(h)
    return h.hex()


def hex_problem(text: str) -> str | None:
    """Why ``text`` is not a 64-hex-digit PDQ hash (one short phrase), or None when it is one."""
    if len(text) != HEX_CHARS:
        return f"has {len(text)} characters, expected {HEX_CHARS} hex digits"
    for pos, ch in enumerate(text, start=1):
        if ch not in _HEX_DIGITS:
            return f"is not hexadecimal ({ch!r} at character {pos})"
    return None


def from_hex(text: str) -> bytes:
    """32 bytes from the 64-hex-digit form (either case). Raises ``ValueError`` saying what is wrong."""
    problem = hex_problem(text)
    if problem is not None:
        raise ValueError(f"PDQ hex {text[:70]!r} {problem}")
    return bytes.fromhex(text)


def as_array(hashes: Iterable[bytes]) -> np.ndarray:
    """Hashes (32 bytes each, e.g. a ``media_hashes.pdq`` column) as a uint8 ``[n, 32]`` array."""
    joined = b"".join(hashes)
    if len(joined) % HASH_BYTES:
        raise ValueError(f"hashes must be {HASH_BYTES} bytes each, got {len(joined)} bytes in all")
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, HASH_BYTES).copy()


def from_arrow(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A ``binary(32)`` column (``media_hashes.pdq``, ``hash_banks.pdq``) as uint8 ``[n, 32]``, without
    a Python object per row (10^6 rows: 0.3 s here, against 1.1 s for ``as_array(column.to_pylist())``).

    Raises ``ValueError`` for another type or for nulls (the tables declare the column non-null).
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if not pa.types.is_fixed_size_binary(chunk.type) or chunk.type.byte_width != HASH_BYTES:
            if pa.types.is_binary(chunk.type) or pa.types.is_large_binary(chunk.type):
                parts.append(as_array(chunk.to_pylist()))
                continue
            raise ValueError(f"a PDQ column must be binary({HASH_BYTES}), got {chunk.type}")
        if chunk.null_count:
            raise ValueError(f"a PDQ column must not hold nulls, got {chunk.null_count}")
        data = chunk.buffers()[1]
        flat = np.frombuffer(data, dtype=np.uint8, count=len(chunk) * HASH_BYTES, offset=chunk.offset * HASH_BYTES)
        parts.append(flat.reshape(-1, HASH_BYTES))
    if not parts:
        return np.empty((0, HASH_BYTES), dtype=np.uint8)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def distance(a: bytes, b: bytes) -> int:
    """Hamming distance between two 32-byte hashes."""
    _check_bytes(a)
    _check_bytes(b)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def _check_bytes(h: bytes) -> None:
    if not isinstance(h, bytes | bytearray | memoryview) or len(h) != HASH_BYTES:
        raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, got {type(h).__name__} of length {len(h)}")
