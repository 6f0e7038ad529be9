"""Building blocks of the models: packing, varlen attention, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.model.batching import PaddingStats, pack_by_tokens
from pipelines.model.metrics import average_precision, roc_auc


def test_pack_by_tokens_keeps_padding_low_and_covers_every_row() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in np.clip(rng.lognormal(3.2, 0.7, 1000), 3, 256)]
    batches = pack_by_tokens(lengths, token_budget=4096, max_rows=128)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    stats = PaddingStats()
    for b in batches:
        assert len(b) <= 128 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 4096)
        stats.add([lengths[i] for i in b])
    assert stats.padding_share < 0.15
    arrival = PaddingStats()
    for s in range(0, 1000, 64):
        arrival.add(lengths[s : s + 64])
    assert arrival.padding_share > 0.5  # what sorting saves


def test_pack_by_tokens_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="token_budget"):
        pack_by_tokens([1], token_budget=0, max_rows=1)


def test_metrics_match_sklearn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        y = rng.random(n) < 0.3
        y[0], y[1] = True, False
        s = np.round(rng.random(n) + 0.3 * y, 1)  # ties on purpose
        assert roc_auc(y, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
        assert average_precision(y, s) == pytest.approx(sklearn_metrics.average_precision_score(y, s), abs=1e-12)
    assert np.isnan(roc_auc(np.array([True, True]), np.array([0.1, 0.2])))


@pytest.mark.parametrize("lengths", [[1], [7, 1, 13], [5, 5, 5, 5], [30, 2]])
def test_varlen_attention_matches_per_sequence_sdpa(lengths: list[int]) -> None:
    torch = pytest.importorskip("torch")
    from pipelines.model.fusion import varlen_attention, varlen_attention_torch

    torch.manual_seed(0)
    total, heads, dim = sum(lengths), 4, 32
    q, k, v = (torch.randn(total, heads, dim) for _ in range(3))
    cu = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32)
    ref = torch.zeros_like(q)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        ref[a:b] = torch.nn.functional.scaled_dot_product_attention(
            *(t[a:b].transpose(0, 1) for t in (q, k, v))
        ).transpose(0, 1)
    torch.testing.assert_close(varlen_attention_torch(q, k, v, cu, max(lengths)), ref, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(varlen_attention(q, k, v, cu, max(lengths)), ref, atol=1e-5, rtol=1e-5)
    kernels = pytest.importorskip("kernels")
    torch.testing.assert_close(kernels.fused_attention_varlen(q, k, v, cu, max(lengths)), ref, atol=1e-5, rtol=1e-5)


def test_fusion_is_independent_of_packing_neighbours() -> None:
    torch = pytest.importorskip("torch")
    from pipelines.model.fusion import FusionConfig, FusionHead

    torch.manual_seed(0)
    fusion = FusionHead(FusionConfig(text_dim=16, image_dim=8, d_model=32), 3).eval()
    text = [torch.randn(3, 16), torch.zeros(0, 16), torch.randn(5, 16)]
    images = [torch.zeros(0, 8), torch.randn(8, 8), torch.randn(4, 8)]
    with torch.inference_mode():
        together = fusion(text, images)
        alone = torch.cat([fusion([t], [i]) for t, i in zip(text, images, strict=True)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
