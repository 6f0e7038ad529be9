"""The linear probe mixed into the fusion's logits: its fit, its inputs, old configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipelines.model.fusion import FusionHead  # noqa: E402
from pipelines.model.probe import (  # noqa: E402
    IMAGE_SCALE,
    LANGUAGE_PRIOR_ROWS,
    TEXT_SCALE,
    LinearProbe,
    fit_probe,
    language_index,
)
from pipelines.model.starter_config import FusionConfig, StarterConfig  # noqa: E402


def _data(n: int, t_dim: int, i_dim: int, heads: int, seed: int) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    text = rng.normal(0.5, 2.0, (n, t_dim))
    text[rng.random(n) < 0.2] = 0.0  # items without text
    image = rng.uniform(0, 6, (n, i_dim))
    image[rng.random(n) < 0.5] = 0.0  # items without image
    logit = text[:, :3].sum(1) * 0.8 + image[:, :2].sum(1) * 0.5 - 4
    y = np.stack([rng.random(n) < 1 / (1 + np.exp(-(logit + 0.3 * h))) for h in range(heads)], 1)
    known = rng.random((n, heads)) < 0.9
    pooled = torch.from_numpy(np.hstack([text, image]).astype(np.float32))
    return pooled, torch.from_numpy(y.astype(np.float32)), torch.from_numpy(known.astype(np.float32))


@pytest.mark.parametrize(("n", "t_dim", "i_dim", "c"), [(63, 5, 3, 0.03), (200, 17, 9, 1.0), (130, 8, 1, 0.3)])
def test_fit_matches_balanced_l2_logistic_regression(n: int, t_dim: int, i_dim: int, c: float) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    pooled, y, known = _data(n, t_dim, i_dim, heads=3, seed=n)
    probe = LinearProbe(t_dim, i_dim, 3)
    fit_probe(probe, pooled, y, known, c=c)
    x = probe.features(pooled).detach().numpy().astype(np.float64)
    with torch.no_grad():
        ours = probe.linear(probe.features(pooled)).numpy()
    for h in range(3):
        k = known[:, h].bool().numpy()
        ref = linear_model.LogisticRegression(C=c, class_weight="balanced", max_iter=10_000, tol=1e-10)
        ref.fit(x[k], y[k, h].numpy())
        np.testing.assert_allclose(ours[:, h], ref.decision_function(x), atol=2e-3, rtol=2e-3, err_msg=f"head {h}")


def test_features_standardise_text_scale_image_and_keep_missing_sides_zero() -> None:
    pooled, y, known = _data(50, 4, 2, heads=1, seed=3)
    probe = LinearProbe(4, 2, 1)
    fit_probe(probe, pooled, y, known, c=1.0)
    has_text = pooled[:, :4].ne(0).any(1)
    ref_mean, ref_std = pooled[has_text, :4].mean(0), pooled[has_text, :4].std(0) + 1e-3
    torch.testing.assert_close(probe.text_mean, ref_mean)
    f = probe.features(pooled)
    torch.testing.assert_close(f[has_text, :4], (pooled[has_text, :4] - ref_mean) / ref_std * TEXT_SCALE)
    assert f[~has_text, :4].abs().sum() == 0
    torch.testing.assert_close(f[:, 4:], pooled[:, 4:] * IMAGE_SCALE)


def test_a_head_without_positives_gets_no_weights() -> None:
    pooled, y, known = _data(80, 4, 2, heads=2, seed=5)
    y[:, 1] = 0.0
    probe = LinearProbe(4, 2, 2)
    fit_probe(probe, pooled, y, known, c=1.0)
    assert probe.linear.weight[1].abs().sum() == 0 and probe.linear.bias[1] == 0
    assert probe.linear.weight[0].abs().sum() > 0


def test_fusion_mixes_transformer_and_probe_logits_from_pooled_tokens() -> None:
    torch.manual_seed(0)
    cfg = FusionConfig(text_dim=6, image_dim=4, d_model=16, n_heads=2, d_ff=16, probe_weight=0.7)
    fusion = FusionHead(cfg, 2).eval()
    assert fusion.probe is not None
    with torch.no_grad():
        fusion.probe.linear.weight.normal_()
    text = [torch.randn(3, 6), torch.zeros(0, 6), torch.randn(1, 6)]
    images = [torch.zeros(0, 4), torch.rand(8, 4), torch.rand(4, 4)]
    with torch.inference_mode():
        mixed = fusion(text, images)
        transformer = fusion.transformer_logits(text, images)
        pooled = torch.stack(
            [
                torch.cat([t[0] if len(t) else torch.zeros(6), im.mean(0) if len(im) else torch.zeros(4)])
                for t, im in zip(text, images, strict=True)
            ]
        )
        probe = fusion.probe.linear(fusion.probe.features(pooled))
    torch.testing.assert_close(mixed, 0.3 * transformer + 0.7 * probe)
    trained = {id(p) for p in fusion.transformer_parameters()}
    assert trained and not any(id(p) in trained for p in fusion.probe.parameters())


def test_configs_saved_before_the_probe_load_without_one() -> None:
    old = StarterConfig().to_json()
    del old["fusion"]["probe_weight"]
    assert StarterConfig.from_json(old).fusion.probe_weight == 0.0
    assert FusionHead(StarterConfig.from_json(old).fusion, 2).probe is None
    assert StarterConfig.from_json(StarterConfig().to_json()).fusion.probe_weight == 0.85
    with pytest.raises(ValueError, match="probe_weight"):
        FusionConfig(probe_weight=1.0)


@pytest.mark.parametrize(("n", "t_dim", "counts"), [(90, 5, (60, 7, 1)), (131, 17, (40, 40, 33))])
def test_language_offsets_are_shrunk_language_means_and_centre_only_known_languages(
    n: int, t_dim: int, counts: tuple[int, ...]
) -> None:
    pooled, y, known = _data(n, t_dim, 3, heads=2, seed=n)
    rng = np.random.default_rng(n + 1)
    # Languages 0..k-1 for the first sum(counts) rows, shifted by their own vector; the rest unknown.
    lang = torch.full((n,), -1, dtype=torch.long)
    start = 0
    for i, count in enumerate(counts):
        lang[start : start + count] = i
        start += count
    has_text = pooled[:, :t_dim].ne(0).any(1)
    shifts = torch.from_numpy(rng.normal(0, 3, (len(counts), t_dim)).astype(np.float32))
    for i in range(len(counts)):
        rows = (lang == i) & has_text
        pooled[rows, :t_dim] += shifts[i]
    names = [f"l{i}" for i in range(len(counts))]
    probe = LinearProbe(t_dim, 3, 2, names)
    fit_probe(probe, pooled, y, known, c=0.3, lang=lang)

    text, lt = pooled[has_text, :t_dim], lang[has_text]
    glob = text.mean(0)
    for i in range(len(counts)):
        rows = text[lt == i]
        ref = (rows.sum(0) + LANGUAGE_PRIOR_ROWS * glob) / (rows.shape[0] + LANGUAGE_PRIOR_ROWS) - glob
        torch.testing.assert_close(probe.language_offset[i], ref, atol=1e-5, rtol=1e-5)
    centred = text - torch.stack([probe.language_offset[i] if i >= 0 else torch.zeros(t_dim) for i in lt.tolist()])
    torch.testing.assert_close(probe.text_mean, centred.mean(0), atol=1e-5, rtol=1e-5)
    f = probe.features(pooled, lang)
    torch.testing.assert_close(f[has_text, :t_dim], (centred - probe.text_mean) / probe.text_std * TEXT_SCALE)
    assert f[~has_text, :t_dim].abs().sum() == 0
    # Unknown languages (index -1, a code training never saw, or None) are not shifted.
    unknown = language_index(["zz", None, "l0"], names, 3)
    assert unknown.tolist() == [-1, -1, 0]
    torch.testing.assert_close(probe.features(pooled[:2], unknown[:2]), probe.features(pooled[:2]))


def test_fusion_scores_depend_on_language_only_through_the_probe_and_old_weights_load() -> None:
    torch.manual_seed(1)
    cfg = FusionConfig(text_dim=6, image_dim=4, d_model=16, n_heads=2, d_ff=16, probe_languages=("de", "en"))
    fusion = FusionHead(cfg, 2).eval()
    assert fusion.probe is not None and fusion.probe.languages == ("de", "en")
    with torch.no_grad():
        fusion.probe.linear.weight.normal_()
        fusion.probe.language_offset.normal_()
    text = [torch.randn(2, 6), torch.randn(1, 6), torch.zeros(0, 6)]
    images = [torch.zeros(0, 4), torch.rand(4, 4), torch.rand(4, 4)]
    with torch.inference_mode():
        none = fusion(text, images)
        de = fusion(text, images, ["de", "de", "de"])
        other = fusion(text, images, ["xx", None, "en"])
    assert not torch.allclose(none[:2], de[:2])
    torch.testing.assert_close(none[:2], other[:2])  # unseen code and None: no shift
    torch.testing.assert_close(none[2], de[2])  # no text, nothing to centre
    assert fusion.state_dict()["probe.language_offset"].shape == (2, 6)
    # Weights saved before language centring have no offsets: a config without languages loads them.
    old = FusionHead(FusionConfig(text_dim=6, image_dim=4, d_model=16, n_heads=2, d_ff=16), 2)
    assert "probe.language_offset" not in old.state_dict()
    state = {k: v for k, v in fusion.state_dict().items() if k != "probe.language_offset"}
    old.load_state_dict(state, strict=True)
    back = StarterConfig.from_json(json.loads(json.dumps(StarterConfig(fusion=cfg).to_json())))
    assert back.fusion.probe_languages == ("de", "en")
    with pytest.raises(ValueError, match="probe_languages"):
        FusionConfig(probe_languages=("en", "en"))
