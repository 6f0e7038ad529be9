"""The starter multimodal moderation model: frozen pretrained towers, trained fusion and heads.

- text tower: all-MiniLM-L6-v2 (or any BERT / XLM-RoBERTa folder: bring your own), run on
  length-sorted micro-batches packed by a token budget;
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.heads import DEFAULT_HEADS
from pipelines.model.batching import PaddingStats, pack_by_tokens
from pipelines.model.decode import DecodeConfig, RowFault, decode_batch
from pipelines.model.fusion import FusionConfig, FusionHead
from pipelines.model.interface import PreparedBatch, Preprocessor, RowError, ScoringModel
from pipelines.model.towers import (
    attention_implementation,
    build_image_tower,
    encode_images,
    encode_text,
    load_text_tower,
    minilm_path,
    packaged_image_weights,
    segment_pool,
)

TEXT_TOWER_DIR = "text_tower"
IMAGE_TOWER_FILE = "image_tower.safetensors"
WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class StarterConfig:
    """Inputs, batching and fusion shape of the starter model.

    image_size: side (px) images and keyframes are resized to for EfficientNet-Lite0.
    max_frames: images per item (a cover image takes one slot), keyframes sampled uniformly.
    image_grid: the feature map is pooled to grid x grid tokens per image.
    text_window: tokens per text-tower window (specials included); longer texts get more windows.
    text_segments: segment tokens per text besides its mean token.
    token_budget / max_batch_rows: a text micro-batch holds at most this many padded tokens / rows.
    max_padding: a text micro-batch is closed before its padding share would pass this.
    fusion: the trained transformer's shape.
    """

    image_size: int = 128
    max_frames: int = 4
    image_grid: int = 2
    text_window: int = 256
    text_segments: int = 4
    token_budget: int = 4096
    max_batch_rows: int = 128
    max_padding: float = 0.10
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"image_size must be in [32, 512], got {self.image_size}")
        if not 1 <= self.max_frames <= 16:
            raise ValueError(f"max_frames must be in [1, 16], got {self.max_frames}")
        if not 1 <= self.image_grid <= 4:
            raise ValueError(f"image_grid must be in [1, 4], got {self.image_grid}")
        if not 8 <= self.text_window <= 512:
            raise ValueError(f"text_window must be in [8, 512], got {self.text_window}")
        if not 1 <= self.text_segments <= 32:
            raise ValueError(f"text_segments must be in [1, 32], got {self.text_segments}")
        if self.token_budget < self.text_window:
            raise ValueError(f"token_budget ({self.token_budget}) must be >= text_window ({self.text_window})")
        if self.max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {self.max_batch_rows}")
        if self.fusion.grid_tokens != self.image_grid**2 or self.fusion.max_images < self.max_frames:
            raise ValueError("fusion.grid_tokens must be image_grid**2 and fusion.max_images >= max_frames")

    def decode_config(self) -> DecodeConfig:
        return DecodeConfig(image_size=self.image_size, max_frames=self.max_frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StarterConfig:
        return cls(**{**d, "fusion": FusionConfig(**d.get("fusion", {}))})


class StarterPreprocessor(Preprocessor):
    """Decode media (shared rules), tokenize text into windows; holds the tokenizer JSON, no weights."""

    def __init__(self, tokenizer_json: str, cfg: StarterConfig) -> None:
        self.tokenizer_json = tokenizer_json
        self.cfg = cfg
        self._tok: Any = None
        self._specials: tuple[list[int], list[int]] = ([], [])

    def __getstate__(self) -> dict[str, Any]:
        return {"tokenizer_json": self.tokenizer_json, "cfg": self.cfg}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tokenizer_json"], state["cfg"])  # type: ignore[misc]

    def _tokenizer(self) -> Any:
        if self._tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self.tokenizer_json)
            tok.no_truncation()  # windows are cut here, so no text is silently dropped
            tok.no_padding()
            # The special tokens the tokenizer's template wraps a sequence in ([CLS] .. [SEP], <s> .. </s>).
            empty = tok.encode("", add_special_tokens=True).ids
            self._specials = (empty[:1], empty[1:]) if empty else ([], [])
            self._tok = tok
        return self._tok

    def windows(self, text: str) -> list[list[int]]:
        """Token-id windows of ``text``, each wrapped in the tokenizer's special tokens."""
        tok = self._tokenizer()
        if not text:
            return []
        ids = tok.encode(text, add_special_tokens=False).ids
        head, tail = self._specials
        step = self.cfg.text_window - len(head) - len(tail)
        return [head + ids[i : i + step] + tail for i in range(0, len(ids), step)]

    def __call__(self, rows: dict[str, list[Any]]) -> PreparedBatch:
        index: list[int] = []
        cols: dict[str, list[Any]] = {"input_ids": [], "window_lens": [], "pixels": [], "n_images": []}
        n_tokens: list[int] = []
        errors: list[RowError] = []
        grid_tokens = self.cfg.image_grid**2
        for i, row in enumerate(decode_batch(rows, self.cfg.decode_config())):
            if isinstance(row, RowFault):
                errors.append(RowError(index=i, stage="preprocess", error_class=row.error_class, message=row.message))
                continue
            wins = self.windows(row.text)
            index.append(i)
            cols["input_ids"].append([t for w in wins for t in w])
            cols["window_lens"].append([len(w) for w in wins])
            cols["pixels"].append(np.stack(row.images).tobytes() if row.images else b"")
            cols["n_images"].append(len(row.images))
            n_tokens.append(sum(len(w) for w in wins) + grid_tokens * len(row.images))
        return PreparedBatch(index=index, columns=cols, n_tokens=n_tokens, errors=errors)


class StarterModel(ScoringModel):
    """Frozen MiniLM + EfficientNet-Lite0 towers, trained fusion transformer, sigmoid heads."""

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
    ) -> None:
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique, got {heads}")
        if fusion.out.out_features != len(heads):
            raise ValueError(f"fusion has {fusion.out.out_features} outputs for {len(heads)} heads")
        self.text_tower = text_tower
        self.tokenizer_json = tokenizer_json
        self.image_tower = image_tower
        self.fusion = fusion.eval()
        self.heads = tuple(heads)
        self.cfg = cfg
        self.name = name
        self.version = version
        self.device = torch.device("cpu")
        self.padding = PaddingStats()
        self._pre = StarterPreprocessor(tokenizer_json, cfg)
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
    ) -> StarterModel:
        """A fresh model: pretrained towers (packaged MiniLM, or the BERT/XLM-R folder ``text_tower``),
        untrained fusion initialised from ``seed``."""
        cfg = config or StarterConfig()
        path = Path(text_tower) if text_tower is not None else minilm_path()
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise FileNotFoundError(f"text tower {path}: no tokenizer.json (save the tokenizer with the checkpoint)")
        text = load_text_tower(path)
        image = build_image_tower(cfg.image_size)
        image.load_state_dict(packaged_image_weights(), strict=True)
        tcfg: Any = text.config
        # RoBERTa-family position ids start after the padding index: fewer usable positions.
        offset = int(tcfg.pad_token_id or 0) + 1 if tcfg.model_type in ("xlm-roberta", "roberta") else 0
        window = min(cfg.text_window, int(tcfg.max_position_embeddings) - offset)
        if int(tcfg.hidden_size) != cfg.fusion.text_dim or window != cfg.text_window:
            fusion_cfg = {**asdict(cfg.fusion), "text_dim": int(tcfg.hidden_size)}
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
        )

    # -- scoring ----------------------------------------------------------------------------
    def preprocessor(self) -> Preprocessor:
        return StarterPreprocessor(self.tokenizer_json, self.cfg)

    def to(self, device: str) -> StarterModel:
        self.device = torch.device(device)
        for m in (self.text_tower, self.image_tower, self.fusion):
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
        text = [
            segment_pool(torch.cat(p), self.cfg.text_segments).half() if p else torch.zeros((0, dim), dtype=torch.half)
            for p in per_row
        ]

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
    def score_features(self, text: list[torch.Tensor], images: list[torch.Tensor]) -> np.ndarray:
        """Scores from (cached) tower outputs: ``[n, len(heads)]`` float32 in [0, 1]."""
        if not text:
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        self.fusion.eval()
        logits = self.fusion([t.float() for t in text], [im.float() for im in images])
        return torch.sigmoid(logits).float().cpu().numpy()

    def score(self, prepared: PreparedBatch) -> np.ndarray:
        if len(prepared) == 0:
            return np.zeros((0, len(self.heads)), dtype=np.float32)
        return self.score_features(*self.encode_towers(prepared))

    def tower_digest(self) -> str:
        """Identifies the frozen towers and their inputs (keys the training feature cache)."""
        import hashlib

        h = hashlib.sha256(json.dumps({k: v for k, v in self.cfg.to_json().items() if k != "fusion"}).encode())
        h.update(self.tokenizer_json.encode())
        for module in (self.text_tower, self.image_tower):
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
        text_dir.mkdir(exist_ok=True)
        self.text_tower.save_pretrained(str(text_dir))  # type: ignore[operator]
        (text_dir / "tokenizer.json").write_text(self.tokenizer_json)
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
        return cls(
            text_tower=text,
            tokenizer_json=(path / TEXT_TOWER_DIR / "tokenizer.json").read_text(),
            image_tower=image,
            fusion=fusion,
            heads=heads,
            cfg=cfg,
            name=name,
            version=version,
        )
