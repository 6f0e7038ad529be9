"""Exact Hamming range matching of 256-bit hashes (PDQ) in Triton: every (stored, bank) pair within a threshold.

Each program owns a tile of ``BLOCK_S`` stored hashes × ``BLOCK_B`` bank entries. It XORs the eight
32-bit words of every pair, counts bits, keeps the pairs with distance ``<= threshold`` and appends
them to three output buffers (stored index, bank index, distance) at positions reserved with one
atomic add per tile. Tiles without a match (nearly all of them: random 256-bit hashes are ~128 bits
apart) write nothing. The counter keeps counting past the buffers' capacity, so the launcher knows
the exact size needed and retries once with it.

Popcount: ``libdevice.popc`` on GPUs; a SWAR popcount (shifts, masks, adds) under the interpreter,
which has no libdevice. Both are exact; the tests compare each against the numpy reference.

This module imports triton; ``kernels.hamming_matches`` imports it lazily (CUDA tensors, or CPU
tensors under ``TRITON_INTERPRET=1``). The interpreter mode is fixed when this module is imported.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from kernels.reference import HASH_WORDS, check_threshold, hash_words

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when this module was imported under ``TRITON_INTERPRET=1``: the kernel runs on CPU tensors."""

try:  # libdevice's popc is one instruction on NVIDIA GPUs; the interpreter cannot run it.
    from triton.language.extra import libdevice

    _HAS_POPC = hasattr(libdevice, "popc")
except ImportError:  # pragma: no cover - depends on the triton build
    _HAS_POPC = False

# The interpreter runs programs one after another in numpy: big tiles mean few Python iterations.
_INTERPRETER_CONFIG = {"BLOCK_S": 64, "BLOCK_B": 64}
_INITIAL_CAPACITY = 1 << 16
# One launch's counter is int32: launches cover at most this many pairs (stored rows are chunked).
_MAX_PAIRS_PER_LAUNCH = (1 << 31) - 1


def _gpu_configs() -> list[triton.Config]:
    shapes = [(128, 64, 4), (128, 128, 8), (64, 64, 4), (256, 64, 8), (256, 128, 8), (64, 128, 4)]
    return [triton.Config({"BLOCK_S": s, "BLOCK_B": b}, num_warps=w, num_stages=2) for s, b, w in shapes]


@triton.jit
def _popcount32_swar(x):
    """Bits set in each int32 lane, with shifts, masks and adds only (exact in the interpreter too).

    Arithmetic right shifts drag the sign bit in, so every shifted value is masked before use; after
    the second step every lane is non-negative and the rest is plain arithmetic.
    """
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    x = x + (x >> 8)
    x = x + (x >> 16)
    return x & 0x3F


@triton.jit
def _hamming_kernel(
    Stored,
    Bank,
    OutS,
    OutB,
    OutD,
    Counter,
    n_stored,
    n_bank,
    threshold,
    capacity,
    stored_offset,
    WORDS: tl.constexpr,
    USE_POPC: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """Matches of one ``BLOCK_S × BLOCK_B`` tile. Grid: (cdiv(n_stored, BLOCK_S), cdiv(n_bank, BLOCK_B)).

    Pointers: Stored (int32 ``[n_stored, WORDS]``, contiguous), Bank (int32 ``[n_bank, WORDS]``,
    contiguous), OutS / OutB / OutD (int32 ``[capacity]``: stored index + ``stored_offset``, bank index,
    distance), Counter (int32 ``[1]``, zero before the launch: total matches, even past capacity).
    Scalars: n_stored, n_bank (rows), threshold (keep distance ``<= threshold``), capacity (output
    slots), stored_offset (added to stored indices: the launcher's chunk start).
    Constexprs: WORDS (32-bit words per hash, 8 for PDQ), USE_POPC (libdevice popc, else SWAR),
    BLOCK_S, BLOCK_B (tile shape).
    Output order is arbitrary (tiles reserve slots in the order they finish).
    """
    pid_s = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    s_valid = offs_s < n_stored
    b_valid = offs_b < n_bank
    s_rows = Stored + offs_s.to(tl.int64) * WORDS
    b_rows = Bank + offs_b.to(tl.int64) * WORDS

    dist = tl.zeros([BLOCK_S, BLOCK_B], dtype=tl.int32)
    for w in tl.static_range(WORDS):
        a = tl.load(s_rows + w, mask=s_valid, other=0)
        b = tl.load(b_rows + w, mask=b_valid, other=0)
        x = a[:, None] ^ b[None, :]
        if USE_POPC:
            dist += libdevice.popc(x)
        else:
            dist += _popcount32_swar(x)

    hit = (dist <= threshold) & s_valid[:, None] & b_valid[None, :]
    hit_i = hit.to(tl.int32)
    n_hits = tl.sum(tl.sum(hit_i, axis=1), axis=0)
    if n_hits > 0:
        # Slot of each hit inside the tile: exclusive prefix over rows, then within the row.
        row_hits = tl.sum(hit_i, axis=1)
        row_start = tl.cumsum(row_hits, axis=0) - row_hits
        slot = row_start[:, None] + tl.cumsum(hit_i, axis=1) - hit_i
        base = tl.atomic_add(Counter, n_hits)
        pos = base + slot
        keep = hit & (pos < capacity)
        s_idx = tl.broadcast_to((offs_s + stored_offset)[:, None], [BLOCK_S, BLOCK_B])
        b_idx = tl.broadcast_to(offs_b[None, :], [BLOCK_S, BLOCK_B])
        tl.store(OutS + pos, s_idx, mask=keep)
        tl.store(OutB + pos, b_idx, mask=keep)
        tl.store(OutD + pos, dist, mask=keep)


if INTERPRETED:
    _kernel = _hamming_kernel
else:
    _kernel = triton.autotune(
        configs=_gpu_configs(),
        key=["WORDS", "USE_POPC"],
        reset_to_zero=["Counter"],  # every timed trial must start from an empty output
    )(_hamming_kernel)

LAUNCHES = 0
"""Number of kernel launches in this process (tests use it to prove the kernel, not a fallback, ran)."""
_TUNED: set[bool] = set()  # autotune keys (USE_POPC) already tuned in this process


def _launch(stored: torch.Tensor, bank: torch.Tensor, threshold: int, capacity: int, offset: int) -> tuple:
    """One launch into fresh buffers: (out_s, out_b, out_d, total matches counted)."""
    global LAUNCHES
    use_popc = _HAS_POPC and not INTERPRETED
    extra: dict[str, int] = dict(_INTERPRETER_CONFIG) if INTERPRETED else {}

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(stored.shape[0], meta["BLOCK_S"]), triton.cdiv(bank.shape[0], meta["BLOCK_B"]))

    def run() -> tuple:
        dev = stored.device
        out_s = torch.empty(capacity, dtype=torch.int32, device=dev)
        out_b = torch.empty(capacity, dtype=torch.int32, device=dev)
        out_d = torch.empty(capacity, dtype=torch.int32, device=dev)
        counter = torch.zeros(1, dtype=torch.int32, device=dev)
        _kernel[grid](
            stored, bank, out_s, out_b, out_d, counter,
            stored.shape[0], bank.shape[0], threshold, capacity, offset,
            WORDS=HASH_WORDS,
            USE_POPC=use_popc,
            **extra,
        )  # fmt: skip
        return out_s, out_b, out_d, counter

    if not INTERPRETED and use_popc not in _TUNED:
        # The first call autotunes, running the kernel many times on the same buffers. Triton resets
        # the counter between trials (reset_to_zero) but not every version resets it after the last
        # one, so that call's output is thrown away and the real launch below starts clean.
        run()
        _TUNED.add(use_popc)
    out_s, out_b, out_d, counter = run()
    LAUNCHES += 1
    return out_s, out_b, out_d, int(counter.item())


def _match_chunk(
    stored: torch.Tensor, bank: torch.Tensor, threshold: int, offset: int, capacity: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Matches of one chunk of stored rows; retries once with the exact size when the buffers overflow."""
    capacity = max(1, min(capacity, stored.shape[0] * bank.shape[0]))
    out_s, out_b, out_d, total = _launch(stored, bank, threshold, capacity, offset)
    if total > capacity:
        capacity = total
        out_s, out_b, out_d, total = _launch(stored, bank, threshold, capacity, offset)
        if total != capacity:  # pragma: no cover - a kernel bug, not a user error
            raise RuntimeError(f"hamming kernel counted {total} matches on a rerun that expected {capacity}")
    return out_s[:total], out_b[:total], out_d[:total], capacity


def hamming_matches(
    stored: torch.Tensor, bank: torch.Tensor, *, threshold: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair ``(i, j)`` with ``hamming(stored[i], bank[j]) <= threshold``, through the Triton kernel.

    Args:
        stored, bank: hashes on one device (CUDA, or CPU under ``TRITON_INTERPRET=1``), as uint8
            ``[n, 32]``, int32 ``[n, 8]`` or int64 ``[n, 4]`` (see ``kernels.reference.hash_words``).
        threshold: largest distance kept, 0..256.

    Returns:
        ``(i, j, dist)``: int64 stored indices, int64 bank indices, int32 distances, sorted by (i, j),
        on the inputs' device.
    """
    if INTERPRETED and stored.device.type == "cuda":
        raise RuntimeError(
            "kernels.hamming was imported under TRITON_INTERPRET=1, so it cannot launch on CUDA tensors; "
            "unset TRITON_INTERPRET in this process to use the GPU kernel"
        )
    if not INTERPRETED and stored.device.type != "cuda":
        raise RuntimeError(
            "kernels.hamming runs on CUDA tensors, or on CPU tensors when TRITON_INTERPRET=1 was set before "
            "triton was imported; use kernels.hamming_matches, which falls back to the numpy reference"
        )
    s_words, b_words = hash_words(stored, "stored"), hash_words(bank, "bank")
    threshold = check_threshold(threshold)
    dev = s_words.device
    if s_words.shape[0] == 0 or b_words.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.int64, device=dev)
        return empty, empty.clone(), torch.empty(0, dtype=torch.int32, device=dev)

    chunk = max(1, _MAX_PAIRS_PER_LAUNCH // b_words.shape[0])
    parts_s, parts_b, parts_d = [], [], []
    capacity = _INITIAL_CAPACITY
    for start in range(0, s_words.shape[0], chunk):
        part = s_words[start : start + chunk]
        out_s, out_b, out_d, capacity = _match_chunk(part, b_words, threshold, start, capacity)
        parts_s.append(out_s)
        parts_b.append(out_b)
        parts_d.append(out_d)
    i = torch.cat(parts_s).to(torch.int64)
    j = torch.cat(parts_b).to(torch.int64)
    d = torch.cat(parts_d)
    order = torch.argsort(i * b_words.shape[0] + j)  # slots are taken in completion order: sort for callers
    return i[order], j[order], d[order]
