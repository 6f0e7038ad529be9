"""GPU smoke run of the starter model: a local folder, no MLflow and no Ray, bf16 + triton_fused.

GPU machines lack MLflow and Ray, so the model is saved to a folder here and scored in a
subprocess where importing either fails. The CUDA run (bf16 autocast, ``triton_fused``
attention in the text tower and the fusion's varlen kernel) must agree with the same
folder's CPU fp32 scores within 1e-2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCORE = r"""
import io, json, sys
sys.modules["mlflow"] = None
sys.modules["ray"] = None
import numpy as np
from PIL import Image
from pipelines.model import load_model_dir

def png(colour):
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buf, "PNG")
    return buf.getvalue()

texts = ["Send 500 BTC to my wallet and I will send back double", "a quiet day at the lake " * 40,
         "Los Zorvians son alimañas", "見てこれ", "ok"]
rows = {
    "content_id": [f"c{i}" for i in range(6)],
    "content_type": ["TEXT"] * 5 + ["IMAGE"],
    "language": ["en", "en", "es", "ja", "en", "en"],
    "text": texts + ["caption under a picture"],
    "image": [None] * 5 + [png((200, 30, 30))],
    "frames": [None] * 6,
}
model = load_model_dir(sys.argv[1])
pre = model.preprocessor()(rows)
cpu = model.score(pre)
model = model.to("cuda")
attn = model.text_tower.config._attn_implementation
gpu = model.score(pre)
print(json.dumps({"cpu": cpu.tolist(), "gpu": gpu.tolist(), "attn": attn}))
"""


@pytest.mark.gpu
def test_starter_model_bf16_triton_on_gpu_matches_cpu_fp32(tmp_path: Path) -> None:
    from pipelines.model import StarterModel, save_model

    save_model(StarterModel.build(seed=3), tmp_path / "m")
    out = subprocess.run(
        [sys.executable, "-c", SCORE, str(tmp_path / "m")],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["attn"] == "triton_fused"
    cpu, gpu = got["cpu"], got["gpu"]
    assert len(cpu) == len(gpu) == 6
    diff = max(abs(a - b) for rc, rg in zip(cpu, gpu, strict=True) for a, b in zip(rc, rg, strict=True))
    assert diff < 1e-2, f"bf16 GPU vs fp32 CPU scores differ by {diff:.3e}"
