"""Plain torch attention: the reference the kernel tests compare against, and the CPU fallback.

``attention_reference`` / ``attention_reference_varlen`` spell the maths out (scores, mask, softmax,
weighted sum) and compute in float64 by default, so they are the ground truth for tests.
``sdpa_fallback`` / ``sdpa_fallback_varlen`` give the same results through torch SDPA: what
``kernels.fused_attention`` runs on CPU tensors when the Triton interpreter is off.
Semantics shared by all four: non-causal; keys past a sequence's valid length are ignored; query rows
past it are zeros.

Also here: the numpy reference of ``kernels.hamming_matches`` (``hamming_matches_reference``) and the
input normalisation both paths share (``hash_words``, ``check_threshold``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F


def _scale(head_dim: int, sm_scale: float | None) -> float:
    return 1.0 / math.sqrt(head_dim) if sm_scale is None else float(sm_scale)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_lengths: torch.Tensor | None = None,
    sm_scale: float | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Attention on padded ``[batch, heads, seq, head_dim]``; returns ``compute_dtype``.

    ``key_lengths`` (int ``[batch]``): valid tokens per sequence, padding at the end, shared by queries
    and keys (self-attention); None means every row is valid.
    """
    qf, kf, vf = (t.to(compute_dtype) for t in (q, k, v))
    scores = torch.matmul(qf, kf.transpose(-1, -2)) * _scale(q.shape[-1], sm_scale)
    if key_lengths is None:
        return torch.matmul(torch.softmax(scores, dim=-1), vf)
    lengths = key_lengths.to(device=q.device, dtype=torch.long)
    key_valid = torch.arange(k.shape[2], device=q.device)[None, :] < lengths[:, None]  # [batch, seq_k]
    scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    query_valid = torch.arange(q.shape[2], device=q.device)[None, :] < lengths[:, None]  # [batch, seq_q]
    out = torch.matmul(probs, vf)
    return torch.where(query_valid[:, None, :, None], out, torch.zeros((), dtype=out.dtype, device=out.device))


def attention_reference_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    *,
    sm_scale: float | None = None,
    compute_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Attention on packed ``[total_tokens, heads, head_dim]`` sequences delimited by ``cu_seqlens``.

    Returns ``compute_dtype``; rows past ``cu_seqlens[-1]`` are zeros.
    """
    out = torch.zeros(q.shape, dtype=compute_dtype, device=q.device)
    bounds = cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        if end > start:
            qs, ks, vs = (t[start:end].transpose(0, 1)[None] for t in (q, k, v))  # [1, heads, len, dim]
            res = attention_reference(qs, ks, vs, sm_scale=sm_scale, compute_dtype=compute_dtype)
            out[start:end] = res[0].transpose(0, 1)
    return out


def sdpa_fallback(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_lengths: torch.Tensor | None = None,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """``kernels.fused_attention`` semantics through torch SDPA; returns the input dtype."""
    scale = _scale(q.shape[-1], sm_scale)
    if key_lengths is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    lengths = key_lengths.to(device=q.device, dtype=torch.long)
    key_valid = torch.arange(k.shape[2], device=q.device)[None, :] < lengths[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_valid[:, None, None, :], scale=scale)
    query_valid = torch.arange(q.shape[2], device=q.device)[None, :] < lengths[:, None]
    # Also clears the NaN rows SDPA gives for a sequence of length 0.
    return torch.where(query_valid[:, None, :, None], out, torch.zeros((), dtype=out.dtype, device=out.device))


def sdpa_fallback_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    *,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """``kernels.fused_attention_varlen`` semantics through torch SDPA, one call per sequence."""
    scale = _scale(q.shape[-1], sm_scale)
    out = torch.zeros_like(q)
    bounds = cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        if end > start:
            qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # [heads, len, dim]
            out[start:end] = F.scaled_dot_product_attention(qs, ks, vs, scale=scale).transpose(0, 1)
    return out


# --- Hamming range matching of 256-bit hashes (reference for kernels/hamming.py) ---------------

HASH_BITS = 256
HASH_WORDS = 8
"""A PDQ hash is 256 bits: 32 bytes, 8 int32 words or 4 int64 words (byte order kept as stored)."""

_WORDS_OF = {torch.uint8: 32, torch.int32: 8, torch.int64: 4}


def hash_words(hashes: torch.Tensor, name: str = "hashes") -> torch.Tensor:
    """``hashes`` as a contiguous int32 ``[n, 8]`` view of the same 32 bytes per row.

    Accepts uint8 ``[n, 32]``, int32 ``[n, 8]`` or int64 ``[n, 4]``: the bytes are reinterpreted, not
    converted, so every layout of the same bytes gives the same distances. Raises ``ValueError``
    otherwise.
    """
    width = _WORDS_OF.get(hashes.dtype)
    if width is None or hashes.ndim != 2 or hashes.shape[1] != width:
        raise ValueError(
            f"{name} must be uint8 [n, 32], int32 [n, 8] or int64 [n, 4], got {hashes.dtype} {tuple(hashes.shape)}"
        )
    return hashes.contiguous().view(torch.int32)


def check_threshold(threshold: int) -> int:
    """``threshold`` if it is an int in [0, 256], else ``ValueError``."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= HASH_BITS:
        raise ValueError(f"threshold must be an int in [0, {HASH_BITS}], got {threshold!r}")
    return threshold


def hamming_distances_reference(stored: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """All distances, int32 ``[n_stored, n_bank]`` on the CPU (numpy XOR + popcount). For small inputs."""
    a = hash_words(stored, "stored").cpu().numpy().view(np.uint64)
    b = hash_words(bank, "bank").cpu().numpy().view(np.uint64)
    x = a[:, None, :] ^ b[None, :, :]
    return torch.from_numpy(_popcount64(x).sum(axis=2, dtype=np.int32))


def hamming_matches_reference(
    stored: torch.Tensor, bank: torch.Tensor, *, threshold: int, block_pairs: int = 1 << 22
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``kernels.hamming_matches`` in numpy: every pair within ``threshold``, sorted by (i, j).

    Returns int64 stored indices, int64 bank indices and int32 distances on the inputs' device.
    Works through ``stored`` in blocks of about ``block_pairs`` pairs, so memory stays bounded.
    """
    threshold = check_threshold(threshold)
    a = hash_words(stored, "stored").cpu().numpy().view(np.uint64)
    b = hash_words(bank, "bank").cpu().numpy().view(np.uint64)
    step = max(1, block_pairs // max(1, b.shape[0]))
    parts_i, parts_j, parts_d = [], [], []
    for start in range(0, a.shape[0], step):
        block = a[start : start + step]
        dist = np.zeros((block.shape[0], b.shape[0]), dtype=np.int32)
        for w in range(a.shape[1]):  # word by word: [block, bank] temporaries, not [block, bank, 4]
            dist += _popcount64(block[:, w, None] ^ b[None, :, w])
        ii, jj = np.nonzero(dist <= threshold)  # row-major: sorted by (i, j)
        parts_i.append(ii + start)
        parts_j.append(jj)
        parts_d.append(dist[ii, jj])
    device = stored.device
    if not parts_i:
        empty = torch.empty(0, dtype=torch.int64, device=device)
        return empty, empty.clone(), torch.empty(0, dtype=torch.int32, device=device)
    i = torch.from_numpy(np.concatenate(parts_i).astype(np.int64)).to(device)
    j = torch.from_numpy(np.concatenate(parts_j).astype(np.int64)).to(device)
    d = torch.from_numpy(np.concatenate(parts_d).astype(np.int32)).to(device)
    return i, j, d


_BYTE_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def _popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 element (``np.bitwise_count`` where numpy has it, else a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_POPCOUNT[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)
