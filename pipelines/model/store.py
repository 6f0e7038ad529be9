"""Save, load, register and resolve scoring models.

A saved model is a folder::

    model.json            kind, name, version, heads, config, and the size and SHA-256 of
                          every other file (so a truncated or altered file is caught on load)
    weights.safetensors   trained weights (safetensors: loading never unpickles)
    ...                   kind-specific files (tokenizer, frozen towers as safetensors)

``model.json`` is written last, so a folder without it is an interrupted save.

The registry is MLflow (tracking and registry both at ``lake.mlflow_uri``, artifacts under
``lake.artifacts_uri``). MLflow is imported only inside the functions that need it, so
:func:`save_model` and :func:`load_model_dir` work on machines without MLflow or Ray.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlparse

from pipelines.errors import BadConfigError, ModelNotFoundError
from pipelines.model.interface import Preprocessor, ScoringModel

if TYPE_CHECKING:
    from pipelines.lake import Lake

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
DEFAULT_EXPERIMENT = "trustbatch"
CHAMPION = "champion"

# kind -> "module:Class" implementing save_files / load_files (imported lazily: the starter
# model needs torch and transformers, the tiny model only numpy).
_KINDS: dict[str, str] = {
    "tiny": "pipelines.model.tiny:TinyModel",
    "starter": "pipelines.model.starter:StarterModel",
}
# kind -> "module:function" building the weight-free preprocessor from a saved folder without
# importing the model's heavy dependencies (what drivers and preprocessing workers need).
_PREPROCESSORS: dict[str, str] = {
    "tiny": "pipelines.model.tiny:preprocessor_from_files",
    "starter": "pipelines.model.starter_config:preprocessor_from_files",
}


class SavableModel(Protocol):
    """What a model class provides so that :func:`save_model` / :func:`load_model_dir` handle it."""

    kind: str
    name: str
    version: str
    heads: tuple[str, ...]

    def save_files(self, path: Path) -> dict[str, Any]:
        """Write weights and other files into ``path``; return the JSON-able config."""
        ...


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MODEL_JSON)
    return {p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}


def save_model(model: ScoringModel, path: str | Path) -> None:
    """Save ``model`` into the folder ``path`` (created if missing)."""
    kind = getattr(model, "kind", None)
    if kind not in _KINDS or not hasattr(model, "save_files"):
        raise BadConfigError(f"cannot save a {type(model).__name__}: only kinds {sorted(_KINDS)} are savable")
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / MODEL_JSON).unlink(missing_ok=True)
    config = model.save_files(root)
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "name": model.name,
        "version": str(model.version),
        "heads": list(model.heads),
        "config": config,
        "files": _manifest(root),
    }
    tmp = root / (MODEL_JSON + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / MODEL_JSON)


def read_model_json(path: str | Path, *, where: str | None = None) -> dict[str, Any]:
    """The validated ``model.json`` of a model folder (no weights are read)."""
    root = Path(path)
    where = where or str(root)
    meta_path = root / MODEL_JSON
    if not meta_path.is_file():
        raise ModelNotFoundError(f"{where}: no {MODEL_JSON} in {root} (not a model folder, or an interrupted save)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"{where}: corrupted artifact: {MODEL_JSON} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelNotFoundError(f"{where}: corrupted artifact: {MODEL_JSON} is not a JSON object")
    missing = [k for k in ("kind", "name", "version", "heads", "config", "files") if k not in meta]
    if missing:
        raise ModelNotFoundError(f"{where}: corrupted artifact: {MODEL_JSON} lacks {', '.join(missing)}")
    if meta["kind"] not in _KINDS:
        raise ModelNotFoundError(f"{where}: unknown model kind '{meta['kind']}' (known: {', '.join(sorted(_KINDS))})")
    if meta.get("format", 0) > FORMAT_VERSION:
        raise ModelNotFoundError(f"{where}: model format {meta['format']} is newer than this code ({FORMAT_VERSION})")
    return meta


def _verify_files(root: Path, files: Mapping[str, Any], where: str) -> None:
    for rel, info in files.items():
        p = root / rel
        if not p.is_file():
            raise ModelNotFoundError(f"{where}: corrupted artifact: {rel} is missing")
        size = p.stat().st_size
        if size != info.get("bytes"):
            raise ModelNotFoundError(
                f"{where}: corrupted artifact: {rel} has {size} bytes, {MODEL_JSON} expects {info.get('bytes')}"
                " (truncated copy?)"
            )
        if _sha256(p) != info.get("sha256"):
            raise ModelNotFoundError(f"{where}: corrupted artifact: {rel} does not match its SHA-256 in {MODEL_JSON}")


def _model_class(kind: str) -> Any:
    module, _, cls = _KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def load_model_dir(path: str | Path, *, where: str | None = None) -> ScoringModel:
    """Load a model folder written by :func:`save_model` (checksums verified, nothing unpickled)."""
    root = Path(path)
    where = where or str(root)
    meta = read_model_json(root, where=where)
    _verify_files(root, meta["files"], where)
    cls = _model_class(meta["kind"])
    try:
        model: ScoringModel = cls.load_files(
            root,
            config=meta["config"],
            heads=tuple(meta["heads"]),
            name=str(meta["name"]),
            version=str(meta["version"]),
        )
    except ModelNotFoundError:
        raise
    except Exception as exc:
        raise ModelNotFoundError(f"{where}: corrupted artifact: cannot load ({type(exc).__name__}: {exc})") from None
    return model


def check_heads(
    model: ScoringModel | ModelRef, required_heads: Iterable[str | None], *, uri: str | None = None
) -> None:
    """Raise :class:`BadConfigError` if ``model`` lacks any of ``required_heads`` (None: a policy without a head)."""
    missing = [h for h in required_heads if h is not None and h not in model.heads]
    if missing:
        where = uri or f"models:/{model.name}/{model.version}"
        raise BadConfigError(
            f"model {where} lacks head(s) {', '.join(missing)} (it has: {', '.join(model.heads)}); "
            "train and register a model version with those heads, or use a policy pack that does not need them"
        )


# -- MLflow registry ----------------------------------------------------------------------


def _client(lake: Lake) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=lake.mlflow_uri, registry_uri=lake.mlflow_uri)


def ensure_experiment(lake: Lake, name: str = DEFAULT_EXPERIMENT) -> str:
    """The id of experiment ``name`` in the lake's MLflow, created with artifacts under the lake."""
    from mlflow.exceptions import MlflowException

    client = _client(lake)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=f"{lake.artifacts_uri}/{name}"))
    except MlflowException:  # created concurrently
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "error_code", ""))


def register_model(
    path_or_model: str | Path | ScoringModel,
    *,
    lake: Lake,
    name: str,
    promote: bool = True,
    run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> str:
    """Log a model folder (or a model, saved first) to MLflow and register a new version of ``name``.

    The folder goes into the artifacts of run ``run_id`` (or of a new run in ``experiment``,
    which also gets ``params`` and ``metrics``) under ``model/``. With ``promote`` the alias
    ``champion`` moves to the new version. Returns the new version number as a string.
    """
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    if not name or "/" in name or "@" in name:
        raise BadConfigError(f"model name '{name}' is invalid: use letters, digits, '-', '_' or '.'")
    with tempfile.TemporaryDirectory(prefix="trustbatch-model-") as tmp:
        if isinstance(path_or_model, ScoringModel):
            folder = Path(tmp) / "model"
            save_model(path_or_model, folder)
        else:
            folder = Path(path_or_model)
        meta = read_model_json(folder)
        _verify_files(folder, meta["files"], str(folder))

        client = _client(lake)
        own_run = run_id is None
        if run_id is None:
            run_id = client.create_run(ensure_experiment(lake, experiment), run_name=f"register-{name}").info.run_id
        try:
            ts = 0
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), ts, 0) for k, v in (metrics or {}).items()],
                params=[Param(k, str(v)) for k, v in (params or {}).items()],
            )
            client.log_artifacts(run_id, str(folder), artifact_path="model")
            source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"
            try:
                client.create_registered_model(name)
            except MlflowException as exc:
                if "ALREADY_EXISTS" not in _error_code(exc):
                    raise
            version_tags = {"kind": str(meta["kind"]), "heads": ",".join(meta["heads"]), **(tags or {})}
            mv = client.create_model_version(name, source, run_id=run_id, tags=version_tags)
            version = str(mv.version)
            if promote:
                client.set_registered_model_alias(name, CHAMPION, version)
        finally:
            if own_run:
                client.set_terminated(run_id)
    return version


def _resolve_registry(uri: str, lake: Lake) -> tuple[str, str, str]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, version, artifact source)."""
    from mlflow.exceptions import MlflowException

    # A sqlite store that does not exist yet has no models; a server (http://...) is asked below.
    if not lake.tracking_store_exists:
        raise ModelNotFoundError(
            f"{uri}: no model registry in lake {lake.root} (train one: batchjobs train --lake ...)"
        )
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        version = None
    else:
        name, _, version = rest.partition("/")
        alias = None
    if not name or (alias is None and not version) or (alias is not None and not alias):
        raise ModelNotFoundError(f"{uri}: expected models:/NAME@ALIAS, models:/NAME/VERSION or a model folder")
    client = _client(lake)
    try:
        client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise ModelNotFoundError(
            f"{uri}: no registered model '{name}' in {lake.mlflow_uri} (registered: {', '.join(known) or 'none'})"
        ) from None
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias is not None
            else client.get_model_version(name, version)
        )
    except MlflowException:
        what = f"alias '{alias}'" if alias is not None else f"version {version}"
        raise ModelNotFoundError(f"{uri}: model '{name}' has no {what}") from None
    return name, str(mv.version), str(mv.source)


def _local_artifacts(source: str, lake: Lake, dst: str) -> Path:
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    import mlflow.artifacts

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=dst, tracking_uri=lake.mlflow_uri))


@dataclass(frozen=True)
class ModelRef:
    """A model resolved from its URI, files verified, weights not loaded.

    What a driver needs to plan a job and fan it out: the resolved name and version (what
    lineage records), the heads, a weight-free preprocessor, and where workers load the
    weights from. Loading through the ref skips the registry lookup (and the MLflow import)
    in every worker. ``folder`` is None when the registry keeps the artifacts in a remote
    store: workers then download them through the registry.
    """

    name: str
    version: str
    heads: tuple[str, ...]
    kind: str
    config: dict[str, Any]
    folder: str | None
    where: str

    def load(self, lake: Lake) -> ScoringModel:
        """The model with its weights (checksums verified again: the files may have changed)."""
        if self.folder is None:
            return load_model(f"models:/{self.name}/{self.version}", lake=lake)
        model = load_model_dir(self.folder, where=self.where)
        model.name, model.version = self.name, self.version
        return model

    def preprocessor(self, lake: Lake) -> Preprocessor:
        """The model's weight-free preprocessor, built from its files without loading weights."""
        if self.folder is None or self.kind not in _PREPROCESSORS:
            return self.load(lake).preprocessor()
        module, _, func = _PREPROCESSORS[self.kind].partition(":")
        try:
            pre: Preprocessor = getattr(importlib.import_module(module), func)(Path(self.folder), config=self.config)
        except Exception as exc:
            raise ModelNotFoundError(
                f"{self.where}: corrupted artifact: cannot build its preprocessor ({exc})"
            ) from None
        return pre


def resolve_model(uri: str, *, lake: Lake) -> ModelRef:
    """Resolve ``uri`` (as :func:`load_model` takes it) and verify its files, without loading weights.

    Raises :class:`ModelNotFoundError` with the same one-line messages as :func:`load_model`.
    """
    if not uri.startswith("models:/"):
        _check_folder_uri(uri)
        folder: str | None = uri.removeprefix("file://")
        name = version = None
        where = uri
    else:
        name, version, source = _resolve_registry(uri, lake)
        where = f"{uri} (models:/{name}/{version} at {source})"
        parsed = urlparse(source)
        folder = unquote(parsed.path) if parsed.scheme in ("", "file") else None
    if folder is None:  # remote artifact store: read model.json from a downloaded copy
        with tempfile.TemporaryDirectory(prefix="trustbatch-resolve-") as tmp:
            meta = read_model_json(_local_artifacts(source, lake, tmp), where=where)
    else:
        meta = read_model_json(folder, where=where)
        _verify_files(Path(folder), meta["files"], where)
    return ModelRef(
        name=name or str(meta["name"]),
        version=version or str(meta["version"]),
        heads=tuple(meta["heads"]),
        kind=str(meta["kind"]),
        config=dict(meta["config"]),
        folder=folder,
        where=where,
    )


def _check_folder_uri(uri: str) -> None:
    if "://" in uri and not uri.startswith("file://"):
        raise ModelNotFoundError(
            f"{uri}: unsupported model URI (use models:/NAME@ALIAS, models:/NAME/VERSION or a folder)"
        )


def load_model(uri: str, *, lake: Lake) -> ScoringModel:
    """Load a model by ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or local folder path.

    The returned model's ``name`` and ``version`` are the resolved registry ones (a folder
    keeps those in its ``model.json``). Raises :class:`ModelNotFoundError` (one line, with
    ``uri``) for an unknown name, alias or version, and for a corrupted artifact.
    """
    if not uri.startswith("models:/"):
        _check_folder_uri(uri)
        return load_model_dir(uri.removeprefix("file://"), where=uri)
    name, version, source = _resolve_registry(uri, lake)
    with tempfile.TemporaryDirectory(prefix="trustbatch-load-") as tmp:
        folder = _local_artifacts(source, lake, tmp)
        model = load_model_dir(folder, where=f"{uri} (models:/{name}/{version} at {source})")
    model.name = name
    model.version = version
    return model
