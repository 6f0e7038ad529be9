"""kernels.hamming_matches (Triton) against the numpy reference: odd sizes, planted near duplicates, edges."""

from __future__ import annotations

import pytest
import torch

import kernels
from kernels import reference

SIZES = [(1, 1), (7, 63), (63, 65), (65, 7), (130, 130), (130, 1), (1, 130)]
THRESHOLDS = [0, 31, 256]


def _launches() -> int:
    from kernels import hamming

    return hamming.LAUNCHES


def _random_hashes(gen: torch.Generator, n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 32), dtype=torch.uint8, generator=gen)


def _flip_bits(gen: torch.Generator, h: torch.Tensor, n_bits: int) -> torch.Tensor:
    """``h`` (uint8 [32]) with exactly ``n_bits`` distinct bits flipped."""
    out = h.clone()
    for bit in torch.randperm(256, generator=gen)[:n_bits].tolist():
        out[bit // 8] ^= 1 << (bit % 8)
    return out


def _planted(kit, n_stored: int, n_bank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fresh random hashes where some bank entries are near duplicates of stored ones (0..40 bits off)."""
    gen = torch.Generator().manual_seed(kit.seed)
    stored, bank = _random_hashes(gen, n_stored), _random_hashes(gen, n_bank)
    for j in range(0, n_bank, 3):
        i = int(torch.randint(0, n_stored, (1,), generator=gen))
        n_bits = [0, 1, 30, 31, 32, 40][j % 6]
        bank[j] = _flip_bits(gen, stored[i], n_bits)
    return stored.to(kit.device), bank.to(kit.device)


def assert_same_matches(got: tuple, want: tuple, what: str = "matches") -> None:
    """Same (i, j, dist) triples in the same order; on failure say which pairs differ."""
    g = {(int(i), int(j), int(d)) for i, j, d in zip(*(t.cpu() for t in got), strict=True)}
    w = {(int(i), int(j), int(d)) for i, j, d in zip(*(t.cpu() for t in want), strict=True)}
    if g != w:
        pytest.fail(
            f"{what}: {len(g)} pairs, reference {len(w)}; missing (first 5) {sorted(w - g)[:5]}, "
            f"extra (first 5) {sorted(g - w)[:5]}"
        )
    for name, a, b in zip(("i", "j", "dist"), got, want, strict=True):
        assert a.dtype == b.dtype, f"{what}: {name} dtype {a.dtype}, reference {b.dtype}"
        assert torch.equal(a.cpu(), b.cpu()), f"{what}: {name} not sorted like the reference (by i, then j)"


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize(("n_stored", "n_bank"), SIZES)
def test_matches_reference_on_odd_sizes(kit, n_stored: int, n_bank: int, threshold: int) -> None:
    stored, bank = _planted(kit, n_stored, n_bank)
    before = _launches()
    got = kernels.hamming_matches(stored, bank, threshold=threshold)
    assert _launches() > before, "the Triton kernel should have run, not the reference"
    want = reference.hamming_matches_reference(stored, bank, threshold=threshold)
    assert_same_matches(got, want)
    if threshold == 256:
        assert got[0].numel() == n_stored * n_bank


def test_planted_pairs_found_at_the_boundary(kit) -> None:
    """Distances 31 are kept and 32 dropped at threshold 31; the reported distance is exact."""
    gen = torch.Generator().manual_seed(kit.seed)
    stored = _random_hashes(gen, 65)
    bank = torch.stack([_flip_bits(gen, stored[k], d) for k, d in ((0, 0), (7, 31), (64, 32), (63, 1))])
    i, j, d = kernels.hamming_matches(stored.to(kit.device), bank.to(kit.device), threshold=31)
    assert [(int(a), int(b), int(c)) for a, b, c in zip(i, j, d, strict=True)] == [(0, 0, 0), (7, 1, 31), (63, 3, 1)]


def test_sign_bits_and_full_words(kit) -> None:
    """Words with the sign bit set, all ones and all zeros: the SWAR popcount's edge cases."""
    words = torch.tensor(
        [[0] * 8, [-1] * 8, [-(2**31)] * 8, [2**31 - 1] * 8, [1, -1, 0, -(2**31), 5, 2**30, -2, 3]],
        dtype=torch.int32,
    )
    got = kernels.hamming_matches(words.to(kit.device), words.to(kit.device), threshold=256)
    want = reference.hamming_matches_reference(words, words, threshold=256)
    assert_same_matches(got, want)
    dist = reference.hamming_distances_reference(words, words)
    assert int(dist[0, 1]) == 256 and int(dist[0, 2]) == 8 and int(dist[0, 3]) == 248


def test_layouts_give_the_same_matches(kit) -> None:
    stored, bank = _planted(kit, 63, 65)
    want = kernels.hamming_matches(stored, bank, threshold=31)
    for s, b in (
        (stored.view(torch.int32), bank.view(torch.int32)),
        (stored.view(torch.int64), bank.view(torch.int64)),
    ):
        assert_same_matches(kernels.hamming_matches(s, b, threshold=31), want, f"{s.dtype} layout")


def test_overflow_retries_with_the_exact_size(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels import hamming

    monkeypatch.setattr(hamming, "_INITIAL_CAPACITY", 5)
    stored, bank = _planted(kit, 130, 65)
    before = _launches()
    got = kernels.hamming_matches(stored, bank, threshold=256)
    assert _launches() == before + 2, "one launch that overflows, one with the counted size"
    assert_same_matches(got, reference.hamming_matches_reference(stored, bank, threshold=256))


def test_stored_rows_in_chunks_keep_their_indices(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels import hamming

    monkeypatch.setattr(hamming, "_MAX_PAIRS_PER_LAUNCH", 7 * 65)  # 7 stored rows per launch
    stored, bank = _planted(kit, 130, 65)
    before = _launches()
    got = kernels.hamming_matches(stored, bank, threshold=128)
    assert _launches() - before == 19  # ceil(130 / 7) chunks
    assert_same_matches(got, reference.hamming_matches_reference(stored, bank, threshold=128))


@pytest.mark.parametrize(("n_stored", "n_bank"), [(0, 5), (5, 0), (0, 0)])
def test_empty_inputs(kit, n_stored: int, n_bank: int) -> None:
    s = torch.zeros(n_stored, 32, dtype=torch.uint8, device=kit.device)
    b = torch.zeros(n_bank, 32, dtype=torch.uint8, device=kit.device)
    i, j, d = kernels.hamming_matches(s, b, threshold=31)
    assert i.numel() == j.numel() == d.numel() == 0
    assert (i.dtype, j.dtype, d.dtype) == (torch.int64, torch.int64, torch.int32)


@pytest.mark.parametrize(
    ("stored", "threshold", "message"),
    [
        (torch.zeros(3, 31, dtype=torch.uint8), 31, "uint8"),
        (torch.zeros(3, 8, dtype=torch.float32), 31, "int32"),
        (torch.zeros(32, dtype=torch.uint8), 31, r"\[n, 32\]"),
        (torch.zeros(3, 32, dtype=torch.uint8), -1, "threshold"),
        (torch.zeros(3, 32, dtype=torch.uint8), 257, "threshold"),
        (torch.zeros(3, 32, dtype=torch.uint8), 31.0, "threshold"),
        (torch.zeros(3, 32, dtype=torch.uint8), True, "threshold"),
    ],
)
def test_bad_inputs_raise(stored: torch.Tensor, threshold: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kernels.hamming_matches(stored, torch.zeros(2, 32, dtype=torch.uint8), threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU dispatch rule")
def test_cpu_without_interpreter_uses_the_reference(kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    stored, bank = _planted(kit, 65, 7)
    before = _launches()
    got = kernels.hamming_matches(stored, bank, threshold=31)
    assert _launches() == before
    assert_same_matches(got, reference.hamming_matches_reference(stored, bank, threshold=31))


@pytest.mark.gpu
@pytest.mark.parametrize("use_popc", [True, False], ids=["popc", "swar"])
def test_large_gpu(kit, monkeypatch: pytest.MonkeyPatch, use_popc: bool) -> None:
    """100k stored × 3k bank with planted near duplicates, compiled kernel (libdevice popc and SWAR)."""
    from kernels import hamming

    monkeypatch.setattr(hamming, "_HAS_POPC", use_popc and hamming._HAS_POPC)
    monkeypatch.setattr(hamming, "_INITIAL_CAPACITY", 64)  # the overflow retry runs on the GPU too
    gen = torch.Generator().manual_seed(kit.seed)
    stored, bank = _random_hashes(gen, 100_003), _random_hashes(gen, 3_001)
    for j in range(0, 3_001, 7):
        bank[j] = _flip_bits(gen, stored[(j * 31) % 100_003], j % 40)
    got = kernels.hamming_matches(stored.cuda(), bank.cuda(), threshold=31)
    want = reference.hamming_matches_reference(stored, bank, threshold=31)
    assert_same_matches(got, want)
    assert got[0].numel() >= sum(1 for j in range(0, 3_001, 7) if j % 40 <= 31)
