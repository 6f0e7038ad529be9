"""Triton attention kernels for ragged batches, with a pure-torch reference and a transformers hook,
and a Triton Hamming range matcher for 256-bit perceptual hashes (``hamming_matches``).

Importing this package imports torch only: triton is imported on the first kernel launch (CUDA
tensors, or CPU tensors under ``TRITON_INTERPRET=1``), transformers on ``register_transformers()``.
Nothing here imports Ray, Delta or MLflow.
"""

from __future__ import annotations

import os

import torch

from kernels._dispatch import fused_attention, fused_attention_varlen

ATTN_IMPLEMENTATION = "triton_fused"
"""The name ``register_transformers()`` registers; pass it as ``attn_implementation=`` to ``from_pretrained``."""


def register_transformers() -> str:
    """Register ``"triton_fused"`` with transformers' attention and attention-mask interfaces (idempotent).

    Returns the registered name, for ``from_pretrained(..., attn_implementation=...)``.
    """
    from kernels.hf import register

    return register()


def hamming_matches(
    stored: torch.Tensor, bank: torch.Tensor, *, threshold: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair ``(i, j)`` with ``hamming(stored[i], bank[j]) <= threshold`` (exact), sorted by (i, j).

    Args:
        stored, bank: 256-bit hashes on one device, as uint8 ``[n, 32]``, int32 ``[n, 8]`` or int64
            ``[n, 4]`` (the same bytes in any of these layouts give the same distances).
        threshold: largest distance kept, an int in [0, 256] (PDQ's usual match distance is 31).

    Returns:
        ``(i, j, dist)``: int64 stored indices, int64 bank indices, int32 distances, on the inputs' device.

    CUDA tensors run the Triton kernel (``kernels.hamming``); CPU tensors run the same kernel under
    ``TRITON_INTERPRET=1`` (tests), otherwise the numpy reference (``kernels.reference``).
    """
    from kernels import reference

    s_words, b_words = reference.hash_words(stored, "stored"), reference.hash_words(bank, "bank")
    reference.check_threshold(threshold)
    if s_words.device != b_words.device:
        raise ValueError(f"stored and bank must be on one device, got {s_words.device} and {b_words.device}")
    if s_words.device.type == "cuda" or os.environ.get("TRITON_INTERPRET", "0") == "1":
        from kernels import hamming

        return hamming.hamming_matches(s_words, b_words, threshold=threshold)
    return reference.hamming_matches_reference(s_words, b_words, threshold=threshold)


__all__ = [
    "ATTN_IMPLEMENTATION",
    "fused_attention",
    "fused_attention_varlen",
    "hamming_matches",
    "register_transformers",
]
