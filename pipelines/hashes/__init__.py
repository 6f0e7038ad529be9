"""Known-media matching with PDQ: hashing, the hex form banks exchange, bank files, exact matching.

The GPU matcher is ``kernels.hamming_matches`` (same pairs as ``match_hashes``). Lake tables
(``media_hashes``, ``hash_banks``) and the jobs that fill and match them live elsewhere.
"""

from __future__ import annotations

from pipelines.hashes.bankfile import BankEntry, BankFile, parse_bank_csv, read_bank_csv
from pipelines.hashes.codec import as_array, bits_to_bytes, bytes_to_bits, distance, from_arrow, from_hex, to_hex
from pipelines.hashes.matcher import DEFAULT_THRESHOLD, MIN_QUALITY, Matches, match_dihedral, match_hashes
from pipelines.hashes.pdq import (
    DIHEDRAL_NAMES,
    MAX_SIDE,
    PdqHash,
    decode,
    for_hashing,
    hash_bytes,
    hash_dihedral,
    hash_frames,
    hash_image,
)
from pipelines.hashes.video import MIN_FRAME_SHARE, ItemMatches, item_matches

__all__ = [
    "DEFAULT_THRESHOLD",
    "DIHEDRAL_NAMES",
    "MAX_SIDE",
    "MIN_FRAME_SHARE",
    "MIN_QUALITY",
    "BankEntry",
    "BankFile",
    "ItemMatches",
    "Matches",
    "PdqHash",
    "as_array",
    "bits_to_bytes",
    "bytes_to_bits",
    "decode",
    "distance",
    "for_hashing",
    "from_arrow",
    "from_hex",
    "hash_bytes",
    "hash_dihedral",
    "hash_frames",
    "hash_image",
    "item_matches",
    "match_dihedral",
    "match_hashes",
    "parse_bank_csv",
    "read_bank_csv",
    "to_hex",
]
