"""Online scoring without Ray: the backfill's stages + decide, bad media as per-item errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelines.model import TinyModel, save_model
from pipelines.policy import load_default_pack
from pipelines.serve.scoring import OnlineScorer
from tests.unit.model_rows import png


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> OnlineScorer:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(TinyModel(), folder)
    return OnlineScorer(model_uri=str(folder), lake_root=str(folder.parent), pack=load_default_pack())


def row(cid: str, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "content_id": cid,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "region": "DE",
        "markets": ["DE", "US"],
        "language": "en",
        "content_type": "TEXT",
        "text": "send your bank password to win",
        "image": None,
        "frames": None,
    }
    base.update(over)
    return base


def test_scores_per_policy_and_actions_per_market(scorer: OnlineScorer) -> None:
    out = scorer.score([row("a"), row("b", content_type="IMAGE", text=None, image=png(), markets=["FR"])])
    assert not out.errors
    a, b = out.results[0], out.results[1]
    pack = scorer.pack
    # The endpoint scores and decides the policies with a model head (bank-only ones match offline).
    model_policies = {p.id for p in pack.model_policies}
    assert set(a["scores"]) == model_policies
    assert all(0.0 <= s <= 1.0 for s in a["scores"].values())
    assert set(a["actions"]) == {"DE", "US"} and set(b["actions"]) == {"FR"}
    # Every policy decides in every market, including cross_border_data (it reads personal_data).
    assert all(set(per) == model_policies for per in a["actions"].values())
    assert all(d["action"] in ("none", "review", "label", "demote", "age_restrict", "remove") for d in a["decisions"])
    assert out.long is not None and set(out.long["chunk_id"].to_list()) == {0, 1}


def test_same_item_same_answer_whatever_the_batch(scorer: OnlineScorer) -> None:
    alone = scorer.score([row("a")]).results[0]
    crowd = scorer.score([row("x", text="hello there"), row("a"), row("y", text="weather")]).results[1]
    assert alone == crowd


def test_undecodable_image_is_an_item_error_not_an_exception(scorer: OnlineScorer) -> None:
    out = scorer.score([row("ok"), row("bad", content_type="IMAGE", text=None, image=b"not an image")])
    assert list(out.results) == [0]
    err = out.errors[1]
    assert (err.content_id, err.stage, err.error_class) == ("bad", "preprocess", "ImageDecodeError")
    assert "image" in err.message
