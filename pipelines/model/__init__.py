"""Scoring models: the interface, the tiny test model, the starter model, and their store.

``StarterModel``, ``StarterConfig``, ``TrainConfig`` and ``train_starter`` import torch and
transformers (or polars), so they are loaded on first use; everything else here needs only numpy, Pillow and safetensors (MLflow is imported
inside the registry functions).
"""

from __future__ import annotations

from typing import Any

from pipelines.model.decode import DecodeConfig
from pipelines.model.interface import INPUT_COLUMNS, PreparedBatch, Preprocessor, RowError, ScoringModel
from pipelines.model.store import (
    ModelRef,
    check_heads,
    ensure_experiment,
    load_model,
    load_model_dir,
    register_model,
    resolve_model,
    save_model,
)
from pipelines.model.tiny import TinyConfig, TinyModel

__all__ = [
    "INPUT_COLUMNS",
    "DecodeConfig",
    "ModelRef",
    "PreparedBatch",
    "Preprocessor",
    "RowError",
    "ScoringModel",
    "StarterConfig",
    "StarterModel",
    "TinyConfig",
    "TinyModel",
    "TrainConfig",
    "check_heads",
    "ensure_experiment",
    "load_model",
    "load_model_dir",
    "register_model",
    "resolve_model",
    "save_model",
    "train_starter",
]

_LAZY = {
    "StarterModel": "pipelines.model.starter",
    "StarterConfig": "pipelines.model.starter",
    "TrainConfig": "pipelines.model.train",
    "train_starter": "pipelines.model.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipelines.model' has no attribute '{name}'")
