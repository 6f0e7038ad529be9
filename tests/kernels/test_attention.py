"""kernels.fused_attention / fused_attention_varlen against the float64 torch reference, on odd shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kernels
from kernels import reference

LENGTHS = [1, 7, 63, 64, 65, 130]
HEAD_DIMS = [32, 64, 80, 96, 128]
CPU_DTYPES = [torch.float32, torch.float16]
REPO = Path(__file__).resolve().parents[2]


def _launches() -> int:
    from kernels import attention

    return attention.LAUNCHES


def _ragged_lengths(kit, batch: int, seq: int) -> torch.Tensor:
    """A length-1 sequence, a full-length one, and random ones in between."""
    lens = [1, seq] + [kit.randint(1, seq) for _ in range(batch - 2)]
    return torch.tensor(lens[:batch], dtype=torch.int32, device=kit.device)


def _qkv(kit, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return kit.randn(*shape, dtype=dtype), kit.randn(*shape, dtype=dtype), kit.randn(*shape, dtype=dtype)


def _check_padded(kit, out: torch.Tensor, ref: torch.Tensor, lengths: torch.Tensor, dtype: torch.dtype) -> None:
    kit.assert_close(out, ref, kit.rel_tol[dtype])
    seq = out.shape[2]
    pad = torch.arange(seq, device=out.device)[None, :] >= lengths.to(out.device).long()[:, None]  # [batch, seq]
    padded_rows = out.permute(0, 2, 1, 3)[pad]
    assert torch.equal(padded_rows, torch.zeros_like(padded_rows)), "rows past a sequence's length must be zeros"


@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=str)
@pytest.mark.parametrize("seq", LENGTHS)
def test_ragged_batch_matches_reference(kit, seq: int, dtype: torch.dtype) -> None:
    batch, heads, dim = 3, 2, 64
    q, k, v = _qkv(kit, (batch, heads, seq, dim), dtype)
    lengths = _ragged_lengths(kit, batch, seq)
    before = _launches() if kit.device.type == "cpu" else 0
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    if kit.device.type == "cpu":
        assert _launches() == before + 1, "the Triton kernel (interpreter) should have run, not the fallback"
    assert out.dtype == dtype and out.shape == q.shape
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, dtype)


@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=str)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_head_dims(kit, head_dim: int, dtype: torch.dtype) -> None:
    batch, heads, seq = 3, 2, 65
    q, k, v = _qkv(kit, (batch, heads, seq, head_dim), dtype)
    lengths = _ragged_lengths(kit, batch, seq)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, dtype)


@pytest.mark.parametrize(("seq_q", "seq_k"), [(7, 7), (130, 130), (7, 130), (65, 1)])
def test_no_lengths_all_rows_valid(kit, seq_q: int, seq_k: int) -> None:
    q = kit.randn(2, 2, seq_q, 32)
    k, v = kit.randn(2, 2, seq_k, 32), kit.randn(2, 2, seq_k, 32)
    out = kernels.fused_attention(q, k, v)
    kit.assert_close(out, reference.attention_reference(q, k, v), kit.rel_tol[torch.float32])


def test_zero_length_and_oversized_lengths(kit) -> None:
    q, k, v = _qkv(kit, (3, 2, 65, 32), torch.float32)
    lengths = torch.tensor([0, 9, 65], dtype=torch.int32, device=kit.device)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, torch.float32)
    assert torch.equal(out[0], torch.zeros_like(out[0]))


def test_custom_scale_and_int64_lengths(kit) -> None:
    q, k, v = _qkv(kit, (2, 2, 63, 64), torch.float32)
    lengths = torch.tensor([5, 63], dtype=torch.int64, device=kit.device)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths, sm_scale=0.3)
    ref = reference.attention_reference(q, k, v, key_lengths=lengths, sm_scale=0.3)
    _check_padded(kit, out, ref, lengths, torch.float32)


def test_strided_inputs_and_out_buffer(kit) -> None:
    """transformers hands over [batch, seq, heads, dim] buffers viewed as [batch, heads, seq, dim]: no copies."""
    batch, seq, heads, dim = 2, 65, 3, 80
    q, k, v = (kit.randn(batch, seq, heads, dim).transpose(1, 2) for _ in range(3))
    assert not q.is_contiguous()
    lengths = torch.tensor([65, 17], dtype=torch.int32, device=kit.device)
    buf = torch.full((batch, seq, heads, dim), float("nan"), device=kit.device)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths, out=buf.transpose(1, 2))
    assert out.data_ptr() == buf.data_ptr()
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, torch.float32)


@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=str)
@pytest.mark.parametrize("head_dim", [64, 80])
def test_varlen_matches_reference_and_padded(kit, head_dim: int, dtype: torch.dtype) -> None:
    lens = [1, 7, 63, 64, 65, 130]
    heads, total = 2, sum(lens)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=kit.device)
    q, k, v = _qkv(kit, (total, heads, head_dim), dtype)
    out = kernels.fused_attention_varlen(q, k, v, cu, max(lens))
    assert out.shape == q.shape and out.dtype == dtype
    kit.assert_close(out, reference.attention_reference_varlen(q, k, v, cu), kit.rel_tol[dtype], "varlen")

    # The padded path on the same sequences gives the same valid rows.
    seq = max(lens)
    padded = [torch.zeros(len(lens), heads, seq, head_dim, dtype=dtype, device=kit.device) for _ in range(3)]
    for i, (start, n) in enumerate(zip(cu[:-1].tolist(), lens, strict=True)):
        for dst, src in zip(padded, (q, k, v), strict=True):
            dst[i, :, :n] = src[start : start + n].transpose(0, 1)
    lengths = torch.tensor(lens, dtype=torch.int32, device=kit.device)
    out_padded = kernels.fused_attention(*padded, key_lengths=lengths)
    for i, (start, n) in enumerate(zip(cu[:-1].tolist(), lens, strict=True)):
        varlen_rows = out[start : start + n].transpose(0, 1).float()
        torch.testing.assert_close(varlen_rows, out_padded[i, :, :n].float(), atol=1e-3, rtol=1e-3)


def test_varlen_empty_sequences_and_strided(kit) -> None:
    lens = [0, 5, 0, 66]
    cu = torch.tensor([0, 0, 5, 5, 71], dtype=torch.int32, device=kit.device)
    q, k, v = (kit.randn(71, 4, 2, 32)[:, :, 0] for _ in range(3))  # [71, 4, 32], not contiguous
    assert not q.is_contiguous()
    out = kernels.fused_attention_varlen(q, k, v, cu, max(lens), sm_scale=0.2)
    kit.assert_close(out, reference.attention_reference_varlen(q, k, v, cu, sm_scale=0.2), 1e-3, "varlen")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU dispatch rule")
def test_cpu_without_interpreter_falls_back_to_sdpa(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    q, k, v = _qkv(kit, (3, 2, 65, 80), torch.float32)
    lengths = torch.tensor([0, 1, 40], dtype=torch.int32)
    before = _launches()
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, torch.float32)
    cu = torch.tensor([0, 1, 8, 71], dtype=torch.int32)
    packed = [kit.randn(71, 2, 32) for _ in range(3)]
    out_v = kernels.fused_attention_varlen(*packed, cu, 63)
    kit.assert_close(out_v, reference.attention_reference_varlen(*packed, cu), 1e-3, "varlen fallback")
    assert _launches() == before, "without TRITON_INTERPRET, CPU tensors must not reach the Triton kernel"


def test_inputs_requiring_grad_get_a_backward(kit) -> None:
    """The kernel is forward-only: with autograd on, the SDPA fallback runs so gradients are right."""
    q, k, v = (kit.randn(2, 2, 9, 32).requires_grad_() for _ in range(3))
    lengths = torch.tensor([9, 4], dtype=torch.int32, device=kit.device)
    before = _launches() if kit.device.type == "cpu" else 0
    kernels.fused_attention(q, k, v, key_lengths=lengths).sum().backward()
    grads = [t.grad for t in (q, k, v)]
    q2, k2, v2 = (t.detach().double().requires_grad_() for t in (q, k, v))
    reference.attention_reference(q2, k2, v2, key_lengths=lengths).sum().backward()
    for got, want in zip(grads, (q2.grad, k2.grad, v2.grad), strict=True):
        kit.assert_close(got, want, 1e-3, "gradient")
    if kit.device.type == "cpu":
        assert _launches() == before
    with torch.no_grad():
        out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    assert out.grad_fn is None
    if kit.device.type == "cpu":
        assert _launches() == before + 1, "under no_grad the kernel runs"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": (2, 2, 8, 32), "k": (2, 2, 8, 16)}, "head_dim"),
        ({"q": (2, 2, 8, 32), "dtype": torch.float64}, "dtype"),
        ({"q": (2, 8, 32)}, "shape"),
        ({"q": (2, 2, 8, 32), "lengths": torch.tensor([1.0, 2.0])}, "key_lengths"),
        ({"q": (2, 2, 8, 32), "k": (2, 2, 9, 32), "lengths": torch.tensor([1, 2])}, "same seq"),
    ],
)
def test_bad_inputs_raise(kwargs: dict, message: str) -> None:
    dtype = kwargs.get("dtype", torch.float32)
    q = torch.zeros(kwargs["q"], dtype=dtype)
    k = torch.zeros(kwargs.get("k", kwargs["q"]), dtype=dtype)
    with pytest.raises(ValueError, match=message):
        kernels.fused_attention(q, k, k, key_lengths=kwargs.get("lengths"))


def test_bad_varlen_inputs_raise() -> None:
    q = torch.zeros(10, 2, 32)
    with pytest.raises(ValueError, match="int32"):
        kernels.fused_attention_varlen(q, q, q, torch.tensor([0, 10]), 10)
    with pytest.raises(ValueError, match="rise from 0"):
        kernels.fused_attention_varlen(q, q, q, torch.tensor([0, 9], dtype=torch.int32), 10)
    with pytest.raises(ValueError, match="max_seqlen"):
        kernels.fused_attention_varlen(q, q, q, torch.tensor([0, 10], dtype=torch.int32), 4)


def test_autotune_pruning_fits_tiles_to_sequences() -> None:
    from kernels import attention

    configs = attention._gpu_configs()

    def tiles(bucket: int, block_d: int = 64) -> set[tuple[int, int]]:
        kept = attention._prune_configs(configs, {"MAX_SEQLEN_Q": bucket}, BLOCK_D=block_d)
        return {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in kept}

    assert tiles(16) == {(16, 32)}  # captions of a few tokens: no 128-row tiles
    assert all(m <= 64 for m, _ in tiles(64)) and tiles(64)
    assert all(m >= 64 for m, _ in tiles(4096)) and tiles(4096)
    assert all(m * n <= 64 * 64 for m, n in tiles(4096, block_d=256))


def test_import_is_cheap_and_leaves_interpreter_alone() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "import os, sys, kernels\n"
        "assert 'triton' not in sys.modules, 'import kernels imported triton'\n"
        "assert 'transformers' not in sys.modules, 'import kernels imported transformers'\n"
        "assert 'ray' not in sys.modules and 'deltalake' not in sys.modules and 'mlflow' not in sys.modules\n"
        "assert 'TRITON_INTERPRET' not in os.environ\n"
    )
    env["PYTHONPATH"] = str(REPO)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)


@pytest.mark.gpu
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
@pytest.mark.parametrize("seq", [1, 65, 130, 1000])
def test_bf16_gpu(kit, seq: int, head_dim: int) -> None:
    batch, heads = 4, 4
    q, k, v = _qkv(kit, (batch, heads, seq, head_dim), torch.bfloat16)
    lengths = _ragged_lengths(kit, batch, seq)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    _check_padded(kit, out, reference.attention_reference(q, k, v, key_lengths=lengths), lengths, torch.bfloat16)
    cu = torch.cat([lengths.new_zeros(1), lengths.cumsum(0).int()])
    packed = [kit.randn(int(cu[-1]), heads, head_dim, dtype=torch.bfloat16) for _ in range(3)]
    out_v = kernels.fused_attention_varlen(*packed, cu, seq)
    kit.assert_close(out_v, reference.attention_reference_varlen(*packed, cu), kit.rel_tol[torch.bfloat16], "varlen")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_long_ragged_gpu(kit, dtype: torch.dtype) -> None:
    batch, heads, seq, dim = 4, 8, 4099, 128
    q, k, v = _qkv(kit, (batch, heads, seq, dim), dtype)
    lengths = torch.tensor([1, 4099, 2048, 777], dtype=torch.int32, device=kit.device)
    out = kernels.fused_attention(q, k, v, key_lengths=lengths)
    ref = reference.attention_reference(q, k, v, key_lengths=lengths, compute_dtype=torch.float32)
    _check_padded(kit, out, ref, lengths, dtype)
