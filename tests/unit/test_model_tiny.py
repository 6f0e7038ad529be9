"""TinyModel and the shared decoding rules: bad rows are dead-lettered, good rows scored."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared row builders
from model_rows import GOOD, batch, mixed_batch, png

from pipelines.heads import DEFAULT_HEADS
from pipelines.model import TinyModel
from pipelines.model.decode import DecodeConfig, decode_row, sample_frames


def test_bad_rows_become_row_errors_and_good_rows_are_scored() -> None:
    rows, good, bad = mixed_batch()
    model = TinyModel()
    prepared = model.preprocessor()(rows)
    assert prepared.index == good
    got = {e.index: e for e in prepared.errors}
    assert sorted(got) == sorted(bad)
    for i, (error_class, word) in bad.items():
        assert got[i].error_class == error_class, (i, got[i])
        assert word in got[i].message, (i, got[i].message)
        assert got[i].stage == "preprocess"
        assert "\n" not in got[i].message
    scores = model.score(prepared)
    assert scores.shape == (len(good), len(DEFAULT_HEADS))
    assert scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))


def test_pil_global_bomb_limit_is_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    TinyModel().preprocessor()(mixed_batch()[0])
    assert before == Image.MAX_IMAGE_PIXELS


def test_scores_are_deterministic_and_independent_of_batch_composition() -> None:
    model = TinyModel()
    alone = model.score(model.preprocessor()(batch(GOOD[:1])))
    together = model.score(model.preprocessor()(batch(GOOD)))
    again = TinyModel().score(TinyModel().preprocessor()(batch(GOOD)))
    np.testing.assert_array_equal(alone[0], together[0])
    np.testing.assert_array_equal(together, again)
    # A head's weights depend on its id only: a subset of heads scores the same.
    sub = TinyModel(("hate", "scams"))
    np.testing.assert_array_equal(
        sub.score(sub.preprocessor()(batch(GOOD))),
        together[:, [DEFAULT_HEADS.index("hate"), DEFAULT_HEADS.index("scams")]],
    )


def test_preprocessor_pickles_and_handles_missing_media_columns() -> None:
    pre = pickle.loads(pickle.dumps(TinyModel().preprocessor()))
    rows = {"content_id": ["a"], "content_type": ["TEXT"], "language": ["en"], "text": ["hi there"]}
    prepared = pre(rows)
    assert prepared.index == [0] and not prepared.errors


def test_empty_batch() -> None:
    model = TinyModel()
    prepared = model.preprocessor()(batch([]))
    assert len(prepared) == 0
    assert model.score(prepared).shape == (0, len(DEFAULT_HEADS))


def test_video_keyframes_are_sampled_uniformly() -> None:
    assert sample_frames(3, 4) == [0, 1, 2]
    assert sample_frames(8, 4) == [1, 3, 5, 7]
    row = decode_row("VIDEO", None, None, [png(colour=(i, 0, 0)) for i in range(40)], DecodeConfig(image_size=16))
    assert not hasattr(row, "error_class")
    assert len(row.images) == 4  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [0, 7, 2000])
def test_decode_config_validates(size: int) -> None:
    with pytest.raises(ValueError, match="image_size"):
        DecodeConfig(image_size=size)
