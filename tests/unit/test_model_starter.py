"""The starter model with its real packaged towers: forward, determinism, dead letters, save/load."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared row builders
from model_rows import GOOD, batch, mixed_batch

from pipelines.heads import DEFAULT_HEADS
from pipelines.model import TinyModel, load_model_dir, save_model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def starter():  # type: ignore[no-untyped-def]
    from pipelines.model.starter import StarterConfig, StarterModel

    torch.manual_seed(0)
    return StarterModel.build(config=StarterConfig(text_window=64), seed=1)


def test_scores_text_image_video_rows(starter) -> None:  # type: ignore[no-untyped-def]
    rows, good, _ = mixed_batch()
    prepared = starter.preprocessor()(rows)
    assert prepared.index == good
    # Same rows dead-lettered, for the same reasons, as the tiny model: one decode module.
    tiny = TinyModel().preprocessor()(rows)
    assert [(e.index, e.error_class, e.message) for e in prepared.errors] == [
        (e.index, e.error_class, e.message) for e in tiny.errors
    ]
    scores = starter.score(prepared)
    assert scores.shape == (len(good), len(DEFAULT_HEADS))
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    # Deterministic, also through a pickled preprocessor (what Ray ships to CPU tasks).
    again = starter.score(pickle.loads(pickle.dumps(starter.preprocessor()))(rows))
    np.testing.assert_array_equal(scores, again)
    video = prepared.index.index(good[3])
    assert prepared.columns["n_images"][video] == 4  # 6 frames -> 4 uniformly sampled keyframes


def test_long_text_is_windowed_not_truncated(starter) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"word{i}" for i in range(400))
    prepared = starter.preprocessor()(batch([{"content_type": "TEXT", "text": text}]))
    lens = prepared.columns["window_lens"][0]
    assert len(lens) > 1 and max(lens) <= 64
    assert sum(lens) == len(prepared.columns["input_ids"][0])
    assert starter.score(prepared).shape == (1, len(DEFAULT_HEADS))


def test_save_load_round_trip(starter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prepared = starter.preprocessor()(batch(GOOD))
    save_model(starter, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["kind"] == "starter"
    assert {"weights.safetensors", "image_tower.safetensors", "text_tower/tokenizer.json"} <= set(meta["files"])
    assert not list((tmp_path / "m").rglob("*.pt*")) and not list((tmp_path / "m").rglob("*.bin"))
    loaded = load_model_dir(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(prepared), starter.score(prepared))


def test_probe_language_offsets_score_by_row_language_and_survive_save_load(starter, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    save_model(starter, tmp_path / "base")
    model = load_model_dir(tmp_path / "base")  # a copy: the module's fixture stays as built
    model.set_probe_languages(["de", "en"])
    assert model.cfg.fusion.probe_languages == ("de", "en")
    with torch.no_grad():
        model.fusion.probe.linear.weight.normal_(generator=torch.Generator().manual_seed(0))
        model.fusion.probe.language_offset.normal_(generator=torch.Generator().manual_seed(1))
    pre = model.preprocessor()
    en, de, unseen = (model.score(pre(batch(GOOD, language=code))) for code in ("en", "de", "xx"))
    no_language = pre(batch(GOOD))
    no_language.columns["language"] = [None] * len(no_language)
    unknown = model.score(no_language)
    text_rows = [i for i, row in enumerate(GOOD) if row.get("text")]
    assert not np.allclose(en[text_rows], de[text_rows])
    np.testing.assert_array_equal(unseen, unknown)  # a language training never saw is not shifted
    np.testing.assert_array_equal(en[1], unknown[1])  # the image-only row has no text to centre
    save_model(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["config"]["starter"]["fusion"][
        "probe_languages"
    ] == ["de", "en"]
    loaded = load_model_dir(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(pre(batch(GOOD, language="de"))), de)
