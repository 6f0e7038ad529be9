"""transformers integration: ``attn_implementation="triton_fused"``.

transformers (5.x) calls an attention function as
``fn(module, query, key, value, attention_mask, *, dropout, scaling, is_causal=None, **kwargs)`` with
``query/key/value`` as ``[batch, heads, seq, head_dim]`` and expects ``([batch, seq, heads, head_dim], None)``.
The mask it passes is built by the function registered under the same name in ``AttentionMaskInterface``;
with no mask function registered, ``masking_utils`` returns None and padded batches would silently attend
to padding. We register torch SDPA's mask builder: a boolean ``[batch, 1, q, kv]`` mask (True = attend),
or None when nothing is padded.

How a call is served:

* packed sequences (``cu_seq_lens_q`` / ``cu_seqlens`` in kwargs, query ``[1, heads, total, dim]``, as
  transformers passes them to FlashAttention): ``kernels.fused_attention_varlen``;
* no mask, or a pure right-padding mask (every query row sees keys ``[0, len_b)``): ``kernels.fused_attention``
  with ``key_lengths``. Query rows past ``len_b`` come out as zeros where eager computes values nobody
  reads (BERT pooling and sentence embeddings mask them out);
* anything the kernel does not cover (causal, dropout while training, attention weights requested, other
  mask patterns or float biases, cross-attention with a mask): torch SDPA with the mask as given.

The project's fusion encoder calls ``kernels.fused_attention_varlen`` directly; it may also call this
function with ``cu_seqlens=``/``max_seqlen=`` (or transformers' ``cu_seq_lens_q``/``max_length_q``) or
with ``key_lengths=``.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F

import kernels
from kernels._dispatch import fused_attention, fused_attention_varlen

_NAME = kernels.ATTN_IMPLEMENTATION


class _LengthsCache:
    """Remembers the lengths derived from the last mask: one model forward passes the same mask to every layer.

    The entry is one tuple, replaced atomically, so concurrent threads never pair one mask with another's lengths.
    """

    def __init__(self) -> None:
        self._entry: tuple[weakref.ReferenceType[torch.Tensor], int, torch.Tensor | None] | None = None

    def get(self, mask: torch.Tensor) -> tuple[bool, torch.Tensor | None]:
        entry = self._entry
        if entry is not None and entry[0]() is mask and mask._version == entry[1]:
            return True, entry[2]
        return False, None

    def put(self, mask: torch.Tensor, lengths: torch.Tensor | None) -> None:
        self._entry = (weakref.ref(mask), mask._version, lengths)


_cache = _LengthsCache()


def right_padding_lengths(mask: torch.Tensor, q_len: int, kv_len: int) -> torch.Tensor | None:
    """Per-sequence lengths if ``mask`` is a pure right-padding self-attention mask, else None.

    Accepts a boolean or 0/1 ``[batch, kv]`` mask, or a 4D ``[batch, 1|heads, 1|q, kv]`` mask that is boolean
    (True = attend) or additive float (0 = attend, dtype minimum or -inf = masked).
    """
    hit, cached = _cache.get(mask)
    if hit:
        return cached
    lengths = _derive_lengths(mask, q_len, kv_len)
    _cache.put(mask, lengths)
    return lengths


def _derive_lengths(mask: torch.Tensor, q_len: int, kv_len: int) -> torch.Tensor | None:
    if q_len != kv_len or mask.shape[-1] != kv_len:
        return None
    if mask.dtype == torch.bool:
        allowed = mask
    elif mask.is_floating_point():
        masked = mask <= torch.finfo(mask.dtype).min / 2
        if not bool(((mask == 0) | masked).all()):
            return None  # a real additive bias, not just a padding mask
        allowed = ~masked
    else:
        if not bool(((mask == 0) | (mask == 1)).all()):
            return None
        allowed = mask.bool()
    if allowed.ndim == 2:
        allowed = allowed[:, None, None, :]
    if allowed.ndim != 4 or allowed.shape[2] not in (1, q_len):
        return None
    key_row = allowed[:, 0, 0, :]
    lengths = key_row.sum(dim=-1)
    expected = torch.arange(kv_len, device=mask.device)[None, :] < lengths[:, None]
    if not bool((allowed == expected[:, None, None, :]).all()):
        return None  # left padding, holes, per-head or per-query patterns
    return lengths.to(torch.int32)


def _sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
    is_causal: bool,
) -> torch.Tensor:
    if attention_mask is not None and attention_mask.ndim == 2:
        attention_mask = attention_mask.bool()[:, None, None, :]
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal
    )
    return out.transpose(1, 2).contiguous()


def triton_fused_attention_forward(
    module: torch.nn.Module | None,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function for ``"triton_fused"``; returns ``([batch, seq, heads, dim], None)``."""
    n_rep = getattr(module, "num_key_value_groups", 1) if module is not None else 1
    if n_rep > 1:  # grouped-query attention: expand keys/values to the query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    training = bool(module is not None and module.training)
    dropout = dropout if training else 0.0
    causal = is_causal if is_causal is not None else bool(getattr(module, "is_causal", False))
    causal = causal and query.shape[2] > 1

    unsupported = (
        causal
        or dropout > 0.0
        or kwargs.get("output_attentions", False)
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
        or query.dtype not in (torch.float16, torch.bfloat16, torch.float32)
    )

    cu_seqlens = kwargs.get("cu_seqlens", kwargs.get("cu_seq_lens_q"))
    if cu_seqlens is not None and not unsupported:
        cu_k = kwargs.get("cu_seq_lens_k")
        if query.shape[0] != 1 or (cu_k is not None and not torch.equal(cu_k, cu_seqlens)):
            raise ValueError("packed attention needs query [1, heads, total_tokens, dim] and cu_seq_lens_k == q's")
        max_seqlen = kwargs.get("max_seqlen", kwargs.get("max_length_q"))
        if max_seqlen is None:
            max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
        qp, kp, vp = (t[0].transpose(0, 1) for t in (query, key, value))  # [total, heads, dim] views
        out = fused_attention_varlen(qp, kp, vp, cu_seqlens.to(torch.int32), int(max_seqlen), sm_scale=scaling)
        return out.unsqueeze(0), None

    key_lengths = kwargs.get("key_lengths")
    if attention_mask is not None and key_lengths is None and not unsupported:
        key_lengths = right_padding_lengths(attention_mask, query.shape[2], key.shape[2])
        if key_lengths is None:
            unsupported = True
    if unsupported:
        # As transformers' sdpa integration: a given mask already encodes causality (SDPA refuses both).
        return _sdpa(query, key, value, attention_mask, dropout, scaling, causal and attention_mask is None), None

    batch, heads, seq_q, head_dim = query.shape
    out = torch.empty((batch, seq_q, heads, head_dim), dtype=query.dtype, device=query.device)
    fused_attention(query, key, value, key_lengths=key_lengths, sm_scale=scaling, out=out.transpose(1, 2))
    return out, None


def register() -> str:
    """Register ``"triton_fused"`` with ``AttentionInterface`` and ``AttentionMaskInterface`` (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    attn_map = AttentionInterface._global_mapping
    mask_map = AttentionMaskInterface._global_mapping
    if attn_map.get(_NAME) is not triton_fused_attention_forward:
        AttentionInterface.register(_NAME, triton_fused_attention_forward)
    if mask_map.get(_NAME) is not sdpa_mask:
        AttentionMaskInterface.register(_NAME, sdpa_mask)
    return _NAME
