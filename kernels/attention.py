"""Fused attention forward in Triton: online softmax, one pass, no score matrix in memory.

One kernel serves both layouts:

* padded ``[batch, heads, seq, head_dim]`` with per-sequence valid lengths (padding at the end), and
* packed ``[total_tokens, heads, head_dim]`` with FlashAttention-style ``cu_seqlens``.

Each program owns one block of ``BLOCK_M`` query rows of one (sequence, head). Its key loop runs to
``cdiv(len, BLOCK_N)`` for that sequence, so key blocks past a sequence's length are never loaded; only
the last, partial block is masked. Query blocks wholly past the length write zeros (padded layout) or
return at once (packed layout). Head dims that are not powers of two are handled by masked loads over
``BLOCK_D = next_power_of_2(head_dim)``.

This module imports triton, so import it only when a Triton launch is wanted: ``kernels`` dispatches
here lazily. Whether the kernel is compiled for a GPU or run by the interpreter is decided by triton
when this module is imported (``TRITON_INTERPRET=1`` must be set before that).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""True when this module was imported under ``TRITON_INTERPRET=1``: the kernel runs on CPU tensors."""
AUTOTUNE = os.environ.get("KERNELS_AUTOTUNE", "1") != "0"
"""False under ``KERNELS_AUTOTUNE=0``: take the first candidate that fits each key instead of timing them all.

Autotuning compiles and times every candidate for each new key; a test suite of odd shapes made of
new keys spent ~17 s a test on an H200 doing that. The GPU test tier sets it off (correctness does not
depend on the tile); benchmarks and production keep it on."""

# The interpreter runs each program serially in numpy: larger blocks mean fewer Python iterations,
# and autotuning there would only measure numpy. Block sizes below 16 are not valid for tl.dot.
_INTERPRETER_CONFIG = {"BLOCK_M": 32, "BLOCK_N": 64}


def _gpu_configs() -> list[triton.Config]:
    """Autotune candidates for the GPU this process sees (keyed on its compute capability).

    Each list ends with small tiles for short sequences (captions of a few tokens), which pruning keeps.
    """
    major = torch.cuda.get_device_capability()[0] if torch.cuda.is_available() else 8
    if major >= 9:  # Hopper and later: large tiles, deeper pipelines
        shapes = [(128, 64, 8, 3), (128, 128, 8, 3), (128, 64, 4, 4), (64, 64, 4, 4), (128, 32, 4, 3), (64, 128, 4, 3)]
    elif major == 8:  # Ampere / Ada: 164 KiB (A100) or 100 KiB (Ada) shared memory
        shapes = [(128, 64, 4, 3), (128, 32, 4, 3), (64, 64, 4, 3), (64, 32, 4, 4), (128, 64, 8, 2)]
    else:  # Volta / Turing and anything unknown: small tiles, two stages
        shapes = [(64, 64, 4, 2), (64, 32, 4, 2)]
    shapes += [(32, 64, 4, 2), (32, 32, 4, 2), (16, 32, 2, 2)]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in shapes]


def _prune_configs(configs: list[triton.Config], named_args: dict, **kwargs: object) -> list[triton.Config]:
    """Drop tiles larger than the longest sequence, and large tiles for head dims of 256 (registers)."""
    bucket = int(named_args["MAX_SEQLEN_Q"])  # a power of two >= 16
    block_d = int(kwargs.get("BLOCK_D", named_args.get("BLOCK_D", 64)))  # type: ignore[call-overload]
    kept = []
    for cfg in configs:
        bm, bn = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"]
        if bm > bucket or bn > max(32, bucket) or (bucket >= 256 and bm < 64):
            continue
        if block_d >= 256 and bm * bn > 64 * 64:
            continue
        kept.append(cfg)
    kept = kept or [min(configs, key=lambda c: c.kwargs["BLOCK_M"] * c.kwargs["BLOCK_N"])]
    return kept if AUTOTUNE else kept[:1]


@triton.jit
def _attn_inner(
    acc,
    l_i,
    m_i,
    q,
    k_base,
    v_base,
    stride_kn,
    stride_kd,
    stride_vn,
    stride_vd,
    offs_d,
    d_mask,
    start_n_lo,
    start_n_hi,
    seqlen_k,
    qk_scale,
    BLOCK_N: tl.constexpr,
    MASK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Online-softmax update over key blocks ``[start_n_lo, start_n_hi)``.

    acc, l_i, m_i: running output ``[BLOCK_M, BLOCK_D]`` fp32, row sums and row maxima (log2 domain).
    q: query tile ``[BLOCK_M, BLOCK_D]`` in the input dtype.
    k_base, v_base: pointers to key/value row 0 of this (sequence, head).
    stride_kn, stride_kd, stride_vn, stride_vd: token and feature strides of K and V (elements).
    offs_d, d_mask: feature offsets ``[BLOCK_D]`` and their validity (``offs_d < head_dim``).
    start_n_lo, start_n_hi: key range, multiples of BLOCK_N except possibly the end.
    seqlen_k: valid keys of this sequence; qk_scale: ``sm_scale * log2(e)``.
    BLOCK_N (constexpr): keys per step. MASK_N (constexpr): mask keys ``>= seqlen_k`` (last block only).
    DOT_PRECISION (constexpr): tl.dot ``input_precision`` ("ieee" for fp32 inputs, else "tf32", unused).
    """
    for start_n in range(start_n_lo, start_n_hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        if MASK_N:
            n_mask = offs_n < seqlen_k
            kt = tl.load(
                k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                mask=n_mask[None, :] & d_mask[:, None],
                other=0.0,
            )
        else:
            kt = tl.load(
                k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                mask=d_mask[:, None],
                other=0.0,
            )
        qk = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale
        if MASK_N:
            qk = tl.where(n_mask[None, :], qk, float("-inf"))
        m_ij = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if MASK_N:
            v = tl.load(
                v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=n_mask[:, None] & d_mask[None, :],
                other=0.0,
            )
        else:
            v = tl.load(
                v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=d_mask[None, :],
                other=0.0,
            )
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(
    Q,
    K,
    V,
    Out,
    Lengths,
    CuSeqlens,
    sm_scale,
    stride_qz,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kz,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vz,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_oz,
    stride_oh,
    stride_om,
    stride_od,
    num_heads,
    seq_q,
    seq_k,
    MAX_SEQLEN_Q,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HAS_LENGTHS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Attention forward for one ``BLOCK_M`` query block of one (sequence, head). Grid: (q blocks, seqs * heads).

    Pointers: Q, K, V (inputs), Out (output, same dtype), Lengths (int32 ``[batch]``, read when HAS_LENGTHS),
    CuSeqlens (int32 ``[n_seq + 1]``, read when IS_VARLEN). sm_scale: softmax scale (float).
    Strides (elements): ``stride_{q,k,v,o}{z,h,m|n,d}`` = batch, head, token, feature. In the packed layout
    the batch stride is unused (tokens of all sequences share the token stride).
    num_heads: heads per sequence. seq_q, seq_k: padded sequence lengths (padded layout; unused when packed).
    MAX_SEQLEN_Q: longest query sequence (grid size and autotune key only).
    Constexprs: HEAD_DIM (real head dim), BLOCK_D (next power of two >= HEAD_DIM, >= 16), IS_VARLEN (packed
    layout), HAS_LENGTHS (padded layout with per-sequence lengths; otherwise every row is valid),
    DOT_PRECISION (tl.dot input precision), BLOCK_M (query rows per program), BLOCK_N (keys per step).
    Padded layout: rows in ``[len, seq_q)`` are written as zeros. Packed: only rows of the sequence are written.
    """
    start_m = tl.program_id(0)
    off_zh = tl.program_id(1)
    off_z = off_zh // num_heads
    off_h = off_zh % num_heads

    if IS_VARLEN:
        tok_start = tl.load(CuSeqlens + off_z).to(tl.int64)
        seqlen_q = (tl.load(CuSeqlens + off_z + 1) - tl.load(CuSeqlens + off_z)).to(tl.int32)
        seqlen_k = seqlen_q
        q_base = Q + tok_start * stride_qm + off_h * stride_qh
        k_base = K + tok_start * stride_kn + off_h * stride_kh
        v_base = V + tok_start * stride_vn + off_h * stride_vh
        o_base = Out + tok_start * stride_om + off_h * stride_oh
        rows_to_write = seqlen_q
    else:
        z64 = off_z.to(tl.int64)
        q_base = Q + z64 * stride_qz + off_h * stride_qh
        k_base = K + z64 * stride_kz + off_h * stride_kh
        v_base = V + z64 * stride_vz + off_h * stride_vh
        o_base = Out + z64 * stride_oz + off_h * stride_oh
        if HAS_LENGTHS:
            length = tl.minimum(tl.maximum(tl.load(Lengths + off_z), 0), seq_k)
            seqlen_q = length
            seqlen_k = length
        else:
            seqlen_q = seq_q
            seqlen_k = seq_k
        rows_to_write = seq_q

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < HEAD_DIM
    o_ptrs = o_base + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    o_mask = (offs_m[:, None] < rows_to_write) & d_mask[None, :]

    if start_m * BLOCK_M >= seqlen_q:
        # Whole query block past the sequence: padding rows are zeros, nothing to compute.
        if not IS_VARLEN:
            tl.store(o_ptrs, tl.zeros([BLOCK_M, BLOCK_D], dtype=Out.dtype.element_ty), mask=o_mask)
    else:
        m_valid = offs_m < seqlen_q
        q = tl.load(
            q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
            mask=m_valid[:, None] & d_mask[None, :],
            other=0.0,
        )
        m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - float("inf")
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
        qk_scale = sm_scale * 1.4426950408889634  # softmax in base 2

        # Full key blocks without masks, then the partial last block (if any) with one.
        full_end = (seqlen_k // BLOCK_N) * BLOCK_N
        acc, l_i, m_i = _attn_inner(
            acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
            offs_d, d_mask, 0, full_end, seqlen_k, qk_scale,
            BLOCK_N, False, DOT_PRECISION,
        )  # fmt: skip
        if full_end < seqlen_k:
            acc, l_i, m_i = _attn_inner(
                acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                offs_d, d_mask, full_end, seqlen_k, seqlen_k, qk_scale,
                BLOCK_N, True, DOT_PRECISION,
            )  # fmt: skip

        out = acc / l_i[:, None]
        out = tl.where(m_valid[:, None], out, 0.0)
        tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=o_mask)


if INTERPRETED:
    _fwd = _fwd_kernel
else:
    _fwd = triton.autotune(
        configs=_gpu_configs(),
        key=["MAX_SEQLEN_Q", "HEAD_DIM", "IS_VARLEN", "HAS_LENGTHS", "DOT_PRECISION"],
        prune_configs_by={"early_config_prune": _prune_configs},
    )(_fwd_kernel)

LAUNCHES = 0
"""Number of kernel launches in this process (tests use it to prove the kernel, not a fallback, ran)."""


def _block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


def _seq_bucket(n: int) -> int:
    # Autotune key: one tuning per power-of-two bucket, not per distinct batch length.
    return max(16, triton.next_power_of_2(n))


def _launch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lengths: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
    n_seq: int,
    num_heads: int,
    seq_q: int,
    seq_k: int,
    max_seqlen_q: int,
    strides: tuple[tuple[int, ...], ...],
    sm_scale: float,
) -> None:
    global LAUNCHES
    head_dim = q.shape[-1]
    dummy = cu_seqlens if cu_seqlens is not None else lengths
    if dummy is None:
        dummy = torch.zeros(1, dtype=torch.int32, device=q.device)
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    extra: dict[str, int] = dict(_INTERPRETER_CONFIG) if INTERPRETED else {}
    bucket = _seq_bucket(max_seqlen_q)

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(max_seqlen_q, meta["BLOCK_M"]), n_seq * num_heads)

    (sqz, sqh, sqm, sqd), (skz, skh, skn, skd), (svz, svh, svn, svd), (soz, soh, som, sod) = strides
    _fwd[grid](
        q, k, v, out,
        lengths if lengths is not None else dummy,
        cu_seqlens if cu_seqlens is not None else dummy,
        sm_scale,
        sqz, sqh, sqm, sqd, skz, skh, skn, skd, svz, svh, svn, svd, soz, soh, som, sod,
        num_heads, seq_q, seq_k, bucket,
        HEAD_DIM=head_dim,
        BLOCK_D=_block_d(head_dim),
        IS_VARLEN=cu_seqlens is not None,
        HAS_LENGTHS=lengths is not None,
        DOT_PRECISION=precision,
        **extra,
    )  # fmt: skip
    LAUNCHES += 1


def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    key_lengths: torch.Tensor | None,
    sm_scale: float,
) -> torch.Tensor:
    """Launch on padded ``[batch, heads, seq, head_dim]`` tensors; writes and returns ``out``.

    Inputs are validated by ``kernels.fused_attention``; any strides are accepted (no copies).
    ``key_lengths`` must be int32 on the inputs' device.
    """
    batch, heads, seq_q, _ = q.shape
    seq_k = k.shape[2]
    _launch(
        q, k, v, out, key_lengths, None,
        n_seq=batch, num_heads=heads, seq_q=seq_q, seq_k=seq_k, max_seqlen_q=seq_q,
        strides=(q.stride(), k.stride(), v.stride(), out.stride()),
        sm_scale=sm_scale,
    )  # fmt: skip
    return out


def fused_attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    sm_scale: float,
) -> torch.Tensor:
    """Launch on packed ``[total_tokens, heads, head_dim]`` tensors; writes and returns ``out``.

    ``cu_seqlens`` must be int32 on the inputs' device. Rows past ``cu_seqlens[-1]`` are not written.
    """
    n_seq = cu_seqlens.shape[0] - 1
    heads = q.shape[1]

    def strides(t: torch.Tensor) -> tuple[int, int, int, int]:
        return (0, t.stride(1), t.stride(0), t.stride(2))

    if n_seq > 0 and max_seqlen > 0:
        _launch(
            q, k, v, out, None, cu_seqlens,
            n_seq=n_seq, num_heads=heads, seq_q=0, seq_k=0, max_seqlen_q=max_seqlen,
            strides=(strides(q), strides(k), strides(v), strides(out)),
            sm_scale=sm_scale,
        )  # fmt: skip
    return out
