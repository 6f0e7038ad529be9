"""Bring your own text tower: a tiny random XLM-RoBERTa and a tokenizer trained on the fly.

Also trains a model end to end on a small generated lake with that tower (fast: the tiny
tower stands in for MiniLM), through the CLI, and registers it in MLflow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared row builders
from model_rows import GOOD, batch

from pipelines.heads import DEFAULT_HEADS
from pipelines.lake import Lake
from pipelines.model import load_model, load_model_dir, register_model, save_model

torch = pytest.importorskip("torch")

CORPUS = [
    "Send your bank password to win a prize",
    "Ein kurzer deutscher Satz über das Wetter",
    "Envía dinero a mi cartera y te devuelvo el doble",
    "holiday photo at the beach with friends",
    "Отправь деньги на мой кошелёк",
    "今日は良い天気ですね",
] * 20


def make_xlmr(folder: Path) -> Path:
    """A tiny randomly initialised XLM-R checkpoint with a Unigram tokenizer.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))]
    )
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=tok.token_to_id("<pad>"),
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
    )
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(str(folder))
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_xlmr(tmp_path_factory.mktemp("xlmr"))


def test_xlmr_text_tower_scores_and_round_trips(xlmr: Path, tmp_path: Path) -> None:
    from pipelines.model.starter import StarterConfig, StarterModel

    model = StarterModel.build(text_tower=xlmr, config=StarterConfig(text_window=32), name="byo")
    assert model.cfg.fusion.text_dim == 32
    rows = batch([*GOOD, {"content_type": "TEXT", "text": " ".join(CORPUS[:12])}])
    prepared = model.preprocessor()(rows)
    assert not prepared.errors
    ids = prepared.columns["input_ids"][0]
    assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s> from the tokenizer's own template
    assert len(prepared.columns["window_lens"][-1]) > 1  # long text: several windows of <= 32
    scores = model.score(prepared)
    assert scores.shape == (len(GOOD) + 1, len(DEFAULT_HEADS))
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()

    save_model(model, tmp_path / "m")
    np.testing.assert_array_equal(load_model_dir(tmp_path / "m").score(prepared), scores)
    lake = Lake(str(tmp_path / "lake"))
    assert register_model(tmp_path / "m", lake=lake, name="byo") == "1"
    served = load_model("models:/byo@champion", lake=lake)
    assert (served.name, served.version) == ("byo", "1")
    np.testing.assert_array_equal(served.score(prepared), scores)


def test_text_tower_must_be_bert_family(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    from pipelines.model.starter import StarterModel

    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32)).save_pretrained(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="not BERT or XLM-RoBERTa"):
        StarterModel.build(text_tower=tmp_path)


@pytest.mark.slow
def test_train_end_to_end_through_the_cli(xlmr: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchjobs.cli import main
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake

    lake = open_lake(str(tmp_path / "lake"))
    generate_backlog(lake, GenerateConfig(rows=160, seed=3, enrich=7.0, batch_size=100))
    args = ["train", "--lake", lake.root, "--epochs", "1", "--text-tower", str(xlmr), "--model-name", "s"]
    assert main([*args, "--feature-cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "registered models:/s/1 (alias champion)" in out and "auc" not in out.split("head")[0]
    # Second run: tower outputs come from the cache; --no-promote leaves champion on v1.
    assert main([*args, "--feature-cache", str(tmp_path / "cache"), "--no-promote"]) == 0
    assert ", 0 to compute" in capsys.readouterr().err
    assert load_model("models:/s@champion", lake=lake).version == "1"
    assert load_model("models:/s/2", lake=lake).version == "2"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=lake.mlflow_uri)
    run_id = client.get_model_version("s", "1").run_id
    run = client.get_run(run_id)
    assert {f"auc_{h}" for h in ("scams", "misinformation")} <= set(run.data.metrics)
    assert {a.path for a in client.list_artifacts(run_id, "evaluation")} >= {
        "evaluation/per_language.csv",
        "evaluation/per_signal.csv",
        "evaluation/metrics.json",
    }


def test_train_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchjobs.cli import main

    assert main(["train", "--lake", str(tmp_path), "--labels", "review"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("batchjobs train: error:") and "review_labels" in err


def test_review_labels_latest_label_wins_and_split_is_by_id(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from pipelines.model.train import _labels_from_review
    from pipelines.schema import REVIEW_LABELS
    from pipelines.sink import commit_once

    lake = Lake(str(tmp_path))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [(f"c{i}", "hate", i % 3 == 0, t0) for i in range(50)]
    rows += [("c0", "hate", False, t0 + timedelta(days=1)), ("c1", "cross_border_data", True, t0)]
    table = pa.Table.from_pylist(
        [
            {"sample_id": f"s{k}", "content_id": c, "policy_id": p, "label": y, "reviewer": "r", "labeled_at": t}
            for k, (c, p, y, t) in enumerate(rows)
        ],
        schema=REVIEW_LABELS,
    )
    commit_once(lake, "review_labels", table, app_id="test-review")
    splits = _labels_from_review(lake, DEFAULT_HEADS)
    ids = splits["train"].content_ids + splits["heldout"].content_ids
    assert sorted(ids) == sorted(f"c{i}" for i in range(50)) and splits["heldout"].content_ids
    hate = DEFAULT_HEADS.index("hate")
    for part in splits.values():
        assert part.known[:, hate].all() and part.known.sum() == len(part.content_ids)  # only hate is known
        if "c0" in part.content_ids:
            assert not part.y[part.content_ids.index("c0"), hate]  # the later label wins
