"""Plain torch attention: the reference the kernel tests compare against, and the CPU fallback.

``attention_reference`` / ``attention_reference_varlen`` spell the maths out (scores, mask, softmax,
weighted sum) and compute in float64 by default, so they are the ground truth for tests.
``sdpa_fallback`` / ``sdpa_fallback_varlen`` give the same results through torch SDPA: what
``kernels.fused_attention`` runs on CPU tensors when the Triton interpreter is off.
Semantics shared by all four: non-causal; keys past a sequence's valid length are ignored; query rows
past it are zeros.
"""

from __future__ import annotations

import itertools
import math

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
