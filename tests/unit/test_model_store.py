"""save/load round trips and the MLflow registry (real sqlite store in a tmp lake)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: shared row builders
from model_rows import GOOD, batch

from pipelines.errors import BadConfigError, ModelNotFoundError
from pipelines.lake import Lake
from pipelines.model import TinyConfig, TinyModel, check_heads, load_model, load_model_dir, register_model, save_model


def _scores(model: TinyModel) -> np.ndarray:
    return model.score(model.preprocessor()(batch(GOOD)))


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = TinyModel(("hate", "scams"), name="t", version="7", config=TinyConfig(seed=3, text_dims=64))
    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["kind"] == "tiny" and meta["heads"] == ["hate", "scams"] and meta["name"] == "t"
    assert "weights.safetensors" in meta["files"]
    loaded = load_model_dir(tmp_path / "m")
    assert (loaded.name, loaded.version, loaded.heads) == ("t", "7", ("hate", "scams"))
    np.testing.assert_array_equal(_scores(loaded), _scores(model))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake with model 'tiny': v1 (champion), v2 (other seed, not promoted)."""
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    assert register_model(TinyModel(), lake=lake, name="tiny", metrics={"auc_hate": 0.5}) == "1"
    assert register_model(TinyModel(config=TinyConfig(seed=1)), lake=lake, name="tiny", promote=False) == "2"
    return lake


def test_load_by_alias_version_and_folder(registry: Lake, tmp_path: Path) -> None:
    champion = load_model("models:/tiny@champion", lake=registry)
    assert (champion.name, champion.version) == ("tiny", "1")
    np.testing.assert_array_equal(_scores(champion), _scores(TinyModel()))  # type: ignore[arg-type]
    v2 = load_model("models:/tiny/2", lake=registry)
    assert (v2.name, v2.version) == ("tiny", "2")
    np.testing.assert_array_equal(_scores(v2), _scores(TinyModel(config=TinyConfig(seed=1))))  # type: ignore[arg-type]
    save_model(TinyModel(name="local", version="x"), tmp_path / "m")
    local = load_model(str(tmp_path / "m"), lake=registry)
    assert (local.name, local.version) == ("local", "x")


def test_promote_moves_champion(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    register_model(TinyModel(), lake=lake, name="m")
    register_model(TinyModel(), lake=lake, name="m")
    assert load_model("models:/m@champion", lake=lake).version == "2"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/nope@champion", "no registered model 'nope'"),
        ("models:/tiny@staging", "has no alias 'staging'"),
        ("models:/tiny/99", "has no version 99"),
        ("models:/tiny", "expected models:/NAME@ALIAS"),
        ("s3://bucket/model", "unsupported model URI"),
    ],
)
@pytest.mark.parametrize("loader", ["load_model", "resolve_model"])
def test_unresolvable_uris(registry: Lake, uri: str, message: str, loader: str) -> None:
    import pipelines.model

    with pytest.raises(ModelNotFoundError, match=message) as err:
        getattr(pipelines.model, loader)(uri, lake=registry)
    assert uri in str(err.value) and "\n" not in str(err.value)


def test_lake_without_registry(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model registry"):
        load_model("models:/starter@champion", lake=Lake(str(tmp_path)))
    assert not (tmp_path / "mlflow.db").exists()


def _artifact_dir(lake: Lake, name: str, version: str) -> Path:
    from mlflow.tracking import MlflowClient

    source = (
        MlflowClient(tracking_uri=lake.mlflow_uri, registry_uri=lake.mlflow_uri).get_model_version(name, version).source
    )
    return Path(source.removeprefix("file://"))


def test_corrupted_artifacts(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    register_model(TinyModel(), lake=lake, name="c")
    register_model(TinyModel(), lake=lake, name="c")
    weights = _artifact_dir(lake, "c", "2") / "weights.safetensors"  # v2 is the champion
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(
        ModelNotFoundError, match=r"models:/c@champion.*corrupted artifact: weights.safetensors has 100"
    ):
        load_model("models:/c@champion", lake=lake)
    meta = _artifact_dir(lake, "c", "1") / "model.json"
    meta.write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=r"models:/c/1.*model.json is not valid JSON"):
        load_model("models:/c/1", lake=lake)


def test_same_size_corruption_and_missing_folder(tmp_path: Path) -> None:
    save_model(TinyModel(), tmp_path / "m")
    w = tmp_path / "m" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError, match="SHA-256"):
        load_model_dir(tmp_path / "m")
    with pytest.raises(ModelNotFoundError, match=r"no model\.json"):
        load_model_dir(tmp_path / "absent")


def test_check_heads() -> None:
    model = TinyModel(("hate", "scams"), name="tiny", version="3")
    check_heads(model, ["hate"])
    with pytest.raises(BadConfigError, match=r"models:/tiny/3 lacks head\(s\) child_safety, violence"):
        check_heads(model, ["hate", "child_safety", "violence"])
    with pytest.raises(BadConfigError, match="models:/tiny@champion"):
        check_heads(model, ["violence"], uri="models:/tiny@champion")


def test_save_and_load_work_without_mlflow_or_ray(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; sys.modules['mlflow'] = None; sys.modules['ray'] = None\n"
        "from pipelines.model import TinyModel, save_model, load_model_dir\n"
        f"save_model(TinyModel(), {str(tmp_path / 'm')!r})\n"
        f"assert load_model_dir({str(tmp_path / 'm')!r}).heads == TinyModel().heads\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_resolve_model_reads_no_weights_and_loads_like_load_model(registry: Lake, tmp_path: Path) -> None:
    from pipelines.model import resolve_model

    ref = resolve_model("models:/tiny@champion", lake=registry)
    assert (ref.name, ref.version, ref.heads, ref.kind) == ("tiny", "1", TinyModel().heads, "tiny")
    assert ref.folder is not None and Path(ref.folder, "model.json").is_file()  # in place: no copy
    rows = batch(GOOD)
    direct = load_model("models:/tiny@champion", lake=registry)
    np.testing.assert_array_equal(
        ref.preprocessor(registry)(rows).columns["features"], direct.preprocessor()(rows).columns["features"]
    )
    loaded = ref.load(registry)
    assert (loaded.name, loaded.version) == ("tiny", "1")
    np.testing.assert_array_equal(_scores(loaded), _scores(direct))  # type: ignore[arg-type]
    save_model(TinyModel(name="local", version="x"), tmp_path / "m")
    assert resolve_model(str(tmp_path / "m"), lake=registry).version == "x"


def test_resolve_model_catches_a_corrupted_artifact_before_any_worker_starts(tmp_path: Path) -> None:
    from pipelines.model import resolve_model

    lake = Lake(str(tmp_path))
    register_model(TinyModel(), lake=lake, name="c")
    weights = _artifact_dir(lake, "c", "1") / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelNotFoundError, match=r"models:/c@champion.*corrupted artifact: weights.safetensors"):
        resolve_model("models:/c@champion", lake=lake)


def test_starter_preprocessor_from_files_needs_no_torch(tmp_path: Path) -> None:
    """Drivers and preprocessing workers build the starter preprocessor without torch."""
    import subprocess

    tok = Path(tmp_path / "m" / "text_tower")
    tok.mkdir(parents=True)
    from pipelines.model.towers import minilm_path

    tok.joinpath("tokenizer.json").write_text((minilm_path() / "tokenizer.json").read_text())
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from pathlib import Path\n"
        "from dataclasses import asdict\n"
        "from pipelines.model.starter_config import StarterConfig, preprocessor_from_files\n"
        f"pre = preprocessor_from_files(Path({str(tmp_path / 'm')!r}), config={{'starter': asdict(StarterConfig())}})\n"
        "out = pre({'content_id': ['a'], 'content_type': ['TEXT'], 'language': ['en'], 'text': ['hello world'],"
        " 'image': [None], 'frames': [None]})\n"
        "assert out.index == [0] and out.n_tokens[0] > 2, out\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
