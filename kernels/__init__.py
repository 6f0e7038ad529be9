"""Triton attention kernels for ragged batches, with a pure-torch reference and a transformers hook.

Importing this package imports torch only: triton is imported on the first kernel launch (CUDA
tensors, or CPU tensors under ``TRITON_INTERPRET=1``), transformers on ``register_transformers()``.
Nothing here imports Ray, Delta or MLflow.
"""

from __future__ import annotations

from kernels._dispatch import fused_attention, fused_attention_varlen

ATTN_IMPLEMENTATION = "triton_fused"
"""The name ``register_transformers()`` registers; pass it as ``attn_implementation=`` to ``from_pretrained``."""


def register_transformers() -> str:
    """Register ``"triton_fused"`` with transformers' attention and attention-mask interfaces (idempotent).

    Returns the registered name, for ``from_pretrained(..., attn_implementation=...)``.
    """
    from kernels.hf import register

    return register()


__all__ = ["ATTN_IMPLEMENTATION", "fused_attention", "fused_attention_varlen", "register_transformers"]
