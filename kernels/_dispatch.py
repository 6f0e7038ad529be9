"""Public attention entry points: validate inputs, then pick the Triton kernel or the SDPA fallback.

Dispatch rule (decided per call from the tensors' device):

* CUDA tensors: the Triton kernel (autotuned).
* CPU tensors with ``TRITON_INTERPRET=1``: the same Triton kernel under the interpreter (tests).
* CPU tensors otherwise: torch SDPA with identical semantics (``kernels.reference.sdpa_fallback``).
* Any device, when autograd will need a backward (grad mode on and an input requires grad): the SDPA
  fallback too, since the kernel is forward-only (inference); training still gets correct gradients.

``kernels.attention`` (and with it triton) is imported on the first Triton launch only, so that
``import kernels`` stays cheap and never decides the interpreter mode for anyone.
"""

from __future__ import annotations

import itertools
import math
import os
from types import ModuleType

import torch

from kernels import reference

_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MAX_HEAD_DIM = 256


def _interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_module(device: torch.device, *tensors: torch.Tensor) -> ModuleType | None:
    """The launcher module when this call should run the Triton kernel, else None (SDPA fallback)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None  # the kernel is forward-only; SDPA gives the same values and a backward
    if device.type == "cuda":
        from kernels import attention

        if attention.INTERPRETED:
            raise RuntimeError(
                "kernels.attention was imported under TRITON_INTERPRET=1, so it cannot launch on CUDA tensors; "
                "unset TRITON_INTERPRET in this process to use the GPU kernel"
            )
        return attention
    if device.type == "cpu" and _interpreter_requested():
        from kernels import attention

        if not attention.INTERPRETED:
            raise RuntimeError(
                "TRITON_INTERPRET=1 was set after kernels.attention (triton) was imported; set it before "
                "anything imports triton (tests/kernels/conftest.py does) to run the kernel on the CPU"
            )
        return attention
    return None


def _check_common(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ndim: int, layout: str) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != ndim:
            raise ValueError(f"{name} must be {layout}, got shape {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise ValueError(f"{name} dtype must be float16, bfloat16 or float32, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    head_dim = q.shape[-1]
    if not 1 <= head_dim <= _MAX_HEAD_DIM or k.shape[-1] != head_dim or v.shape[-1] != head_dim:
        raise ValueError(
            f"q, k, v must share one head_dim in [1, {_MAX_HEAD_DIM}], got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}"
        )


def _scale(head_dim: int, sm_scale: float | None) -> float:
    if sm_scale is None:
        return 1.0 / math.sqrt(head_dim)
    if not math.isfinite(sm_scale):
        raise ValueError(f"sm_scale must be a finite float, got {sm_scale}")
    return float(sm_scale)


def _empty_like(t: torch.Tensor) -> torch.Tensor:
    """Output allocation (tests replace it with a NaN-filled one to catch rows the kernel never writes)."""
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_lengths: torch.Tensor | None = None,
    sm_scale: float | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Non-causal attention on padded ``[batch, heads, seq, head_dim]`` tensors (FlashAttention-style forward).

    Args:
        q, k, v: ``[batch, heads, seq, head_dim]``, float16 / bfloat16 / float32, any strides. Without
            ``key_lengths`` the query and key sequence lengths may differ.
        key_lengths: int tensor ``[batch]``: valid tokens per sequence (padding at the end), for queries
            and keys alike (self-attention: q and k then need the same seq). Key blocks past a length are
            skipped; query rows past it are zeros. None: every row is valid.
        sm_scale: softmax scale, default ``1 / sqrt(head_dim)``.
        out: optional ``[batch, heads, seq_q, head_dim]`` tensor (any strides, q's dtype and device) to
            write into, e.g. a transposed view of a ``[batch, seq, heads, dim]`` buffer.

    Returns:
        ``[batch, heads, seq_q, head_dim]`` in q's dtype (fp32 accumulation inside).
    """
    _check_common(q, k, v, 4, "[batch, heads, seq, head_dim]")
    batch, heads, seq_q, head_dim = q.shape
    if k.shape[:2] != (batch, heads) or v.shape != k.shape:
        raise ValueError(
            f"k and v must be [batch={batch}, heads={heads}, seq_k, head_dim], got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if key_lengths is not None:
        if key_lengths.shape != (batch,) or key_lengths.dtype.is_floating_point or key_lengths.dtype == torch.bool:
            got = f"{key_lengths.dtype} {tuple(key_lengths.shape)}"
            raise ValueError(f"key_lengths must be an int tensor of shape [{batch}], got {got}")
        if k.shape[2] != seq_q:
            raise ValueError(f"with key_lengths, q and k need the same seq length, got {seq_q} and {k.shape[2]}")
    if out is not None and (out.shape != q.shape or out.dtype != q.dtype or out.device != q.device):
        raise ValueError(f"out must be {tuple(q.shape)} {q.dtype} on {q.device}, got {tuple(out.shape)} {out.dtype}")
    scale = _scale(head_dim, sm_scale)
    if batch == 0 or heads == 0 or seq_q == 0:
        return out if out is not None else torch.zeros_like(q)
    if k.shape[2] == 0:
        raise ValueError("k and v must hold at least one token")

    launcher = _triton_module(q.device, q, k, v)
    if launcher is None:
        res = reference.sdpa_fallback(q, k, v, key_lengths=key_lengths, sm_scale=scale)
        return res if out is None else out.copy_(res)
    lengths = None if key_lengths is None else key_lengths.to(device=q.device, dtype=torch.int32)
    dest = _empty_like(q) if out is None else out
    return launcher.fused_attention(q, k, v, dest, lengths, scale)


def fused_attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    *,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """Non-causal attention on packed sequences, as FlashAttention's varlen API.

    Args:
        q, k, v: ``[total_tokens, heads, head_dim]``, float16 / bfloat16 / float32, any strides.
        cu_seqlens: int32 ``[n_seq + 1]``: sequence ``i`` is tokens ``cu_seqlens[i]:cu_seqlens[i + 1]``;
            ``cu_seqlens[0] == 0`` and ``cu_seqlens[-1] == total_tokens`` (not checked on CUDA, to avoid
            a device sync; rows past ``cu_seqlens[-1]`` are then left unwritten, as in FlashAttention).
        max_seqlen: the longest sequence (an upper bound is fine; it sizes the launch grid).
        sm_scale: softmax scale, default ``1 / sqrt(head_dim)``.

    Returns:
        ``[total_tokens, heads, head_dim]`` in q's dtype.
    """
    _check_common(q, k, v, 3, "[total_tokens, heads, head_dim]")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must have one shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if cu_seqlens.ndim != 1 or cu_seqlens.shape[0] < 1 or cu_seqlens.dtype != torch.int32:
        raise ValueError(f"cu_seqlens must be int32 [n_seq + 1], got {cu_seqlens.dtype} {tuple(cu_seqlens.shape)}")
    if cu_seqlens.device != q.device:
        raise ValueError(f"cu_seqlens must be on {q.device}, got {cu_seqlens.device}")
    max_seqlen = int(max_seqlen)
    if max_seqlen < 0:
        raise ValueError(f"max_seqlen must be >= 0, got {max_seqlen}")
    if cu_seqlens.device.type == "cpu":
        bounds = cu_seqlens.tolist()
        lengths = [b - a for a, b in itertools.pairwise(bounds)]
        if bounds[0] != 0 or bounds[-1] != q.shape[0] or any(n < 0 for n in lengths):
            raise ValueError(f"cu_seqlens must rise from 0 to total_tokens={q.shape[0]}, got {bounds}")
        if lengths and max(lengths) > max_seqlen:
            raise ValueError(f"max_seqlen={max_seqlen} is below the longest sequence ({max(lengths)})")
    scale = _scale(q.shape[-1], sm_scale)

    launcher = _triton_module(q.device, q, k, v)
    if launcher is None:
        return reference.sdpa_fallback_varlen(q, k, v, cu_seqlens, sm_scale=scale)
    return launcher.fused_attention_varlen(q, k, v, _empty_like(q), cu_seqlens, max_seqlen, scale)
