"""Train the starter model offline: frozen-tower features once, then the fusion and heads.

1. Read labels (``ground_truth`` train/heldout splits, or human ``review_labels``) and join
   the backlog rows they name (through polars: see FACTS.md on DeltaTable.to_pyarrow_table).
2. Run the frozen towers ONCE over those rows (length-sorted, token-budget micro-batches) and
   keep their pooled outputs as float16 (optionally on disk, keyed by tower digest and rows).
3. Fit the linear probe on pooled vectors (convex, L-BFGS), then train the fusion transformer
   and heads on the cache (masked BCE, AdamW, cosine decay); scores mix the two.
4. Evaluate on the held-out split: per head ROC AUC / AP overall, per language and per
   signal (text / image / both); log everything and the model to MLflow, register a new
   version and move ``champion`` unless told not to.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import BadConfigError, BadInputError
from pipelines.heads import DEFAULT_HEADS
from pipelines.lake import Lake, table_exists
from pipelines.model.metrics import average_precision, roc_auc

LABEL_SOURCES = ("ground_truth", "review")
Progress = Callable[[str], None]
SHARD_ROWS = 1024
_ZERO_SHOT_SCHEMA = ["head", "language", "rows", "positives", "auc", "ap", "note"]
_BACKLOG_COLUMNS = ["content_id", "content_type", "language", "text", "image", "frames"]


@dataclass(frozen=True)
class TrainConfig:
    """What ``batchjobs train`` does.

    model_name: registered model name. labels: "ground_truth" (generated lakes) or "review".
    promote: move alias ``champion`` to the new version. epochs / batch_size / lr /
    weight_decay / seed: the fusion training. max_rows: cap on training rows (a deterministic
    hash sample), None for all. max_heldout_rows: cap on evaluation rows, None for all.
    text_tower: "e5+use" (None: the default), "e5", "minilm", or a BERT / XLM-R folder (bring
    your own; "FOLDER+use" keeps the sentence vector). feature_cache: a folder where tower
    outputs are kept between runs (None: memory only).
    probe_c: inverse L2 strength of the linear probe (scikit-learn's ``C``); the probe's share
    of the logits is the model's ``fusion.probe_weight``.
    min_language_positives: per-language metrics need this many positives and negatives.
    threads: torch CPU threads for this process. 1 by default: on shared cores a second
    OpenMP thread made the towers ~2.5x and the fusion steps ~50x slower here (spinning
    threads fighting other jobs); raise it on a machine of your own.
    """

    model_name: str = "starter"
    labels: str = "ground_truth"
    promote: bool = True
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    max_rows: int | None = None
    max_heldout_rows: int | None = None
    text_tower: str | None = None
    feature_cache: str | None = None
    probe_c: float = 0.03
    min_language_positives: int = 10
    threads: int = 1
    heads: tuple[str, ...] = DEFAULT_HEADS

    def __post_init__(self) -> None:
        if self.labels not in LABEL_SOURCES:
            raise BadConfigError(f"labels must be one of {', '.join(LABEL_SOURCES)}, got '{self.labels}'")
        if not 1 <= self.epochs <= 1000:
            raise BadConfigError(f"epochs must be in [1, 1000], got {self.epochs}")
        if not 1 <= self.batch_size <= 4096:
            raise BadConfigError(f"batch_size must be in [1, 4096], got {self.batch_size}")
        if not 0 < self.lr < 1:
            raise BadConfigError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 < self.probe_c <= 1e6:
            raise BadConfigError(f"probe_c must be in (0, 1e6], got {self.probe_c}")
        for name in ("max_rows", "max_heldout_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadConfigError(f"{name} must be >= 1, got {value}")
        if not self.model_name or "/" in self.model_name or "@" in self.model_name:
            raise BadConfigError(f"model name '{self.model_name}' is invalid: use letters, digits, '-', '_' or '.'")


@dataclass
class TrainSummary:
    """What one training run produced."""

    model_name: str
    version: str
    run_id: str
    promoted: bool
    train_rows: int
    heldout_rows: int
    skipped_rows: int
    feature_seconds: float
    train_seconds: float
    padding_share: float
    metrics: dict[str, float]
    per_language: list[dict[str, Any]] = field(default_factory=list)
    per_signal: list[dict[str, Any]] = field(default_factory=list)
    zero_shot: list[dict[str, Any]] = field(default_factory=list)


# -- labels ----------------------------------------------------------------------------------


@dataclass
class LabelSet:
    """Labels of one split: ``y`` [n, heads] bool, ``known`` [n, heads] bool (mask), ``signal`` per cell."""

    content_ids: list[str]
    y: np.ndarray
    known: np.ndarray
    signal: np.ndarray  # object [n, heads]: "text" | "image" | "both" | "none" | ""


def _hash_unit(content_id: str, salt: str) -> float:
    return zlib.crc32(f"{salt}/{content_id}".encode()) / 2**32


def _read_delta(lake: Lake, table: str, what: str) -> Any:
    import polars as pl

    uri = lake.path(table)
    if not table_exists(uri):
        raise BadInputError(f"{uri}: no {table} table ({what})")
    return pl.read_delta(uri)


def _labels_from_ground_truth(lake: Lake, heads: tuple[str, ...]) -> dict[str, LabelSet]:
    import polars as pl

    gt = _read_delta(lake, "ground_truth", "generate a lake with `batchjobs generate`, or use --labels review")
    gt = gt.filter(pl.col("policy_id").is_in(list(heads)))
    if gt.height == 0:
        raise BadInputError(f"{lake.path('ground_truth')}: no labels for heads {', '.join(heads)}")
    out = {}
    for split in ("train", "heldout"):
        part = gt.filter(pl.col("split") == split)
        ids = sorted(set(part["content_id"].to_list()))
        pos = {c: i for i, c in enumerate(ids)}
        y = np.zeros((len(ids), len(heads)), dtype=bool)
        known = np.zeros_like(y)
        signal = np.full(y.shape, "", dtype=object)
        hidx = {h: j for j, h in enumerate(heads)}
        for cid, pid, label, sig in part.select("content_id", "policy_id", "label", "signal").iter_rows():
            i, j = pos[cid], hidx[pid]
            y[i, j], known[i, j], signal[i, j] = bool(label), True, sig
        out[split] = LabelSet(ids, y, known, signal)
    return out


def _labels_from_review(lake: Lake, heads: tuple[str, ...]) -> dict[str, LabelSet]:
    import polars as pl

    uri = lake.path("review_labels")
    hint = "run human review first (batchjobs review) or train with --labels ground_truth"
    if not table_exists(uri):
        raise BadInputError(f"{uri}: no review_labels table; {hint}")
    rl = pl.read_delta(uri).filter(pl.col("policy_id").is_in(list(heads)))
    if rl.height == 0:
        raise BadInputError(f"{uri}: no review labels for heads {', '.join(heads)}; {hint}")
    # The latest label of each (content, policy) wins; items are split 80/20 by a hash of the id.
    rl = rl.sort("labeled_at").unique(subset=["content_id", "policy_id"], keep="last")
    out = {}
    hidx = {h: j for j, h in enumerate(heads)}
    for split in ("train", "heldout"):
        keep = [
            c for c in set(rl["content_id"].to_list()) if (_hash_unit(c, "review-split") < 0.2) == (split == "heldout")
        ]
        ids = sorted(keep)
        pos = {c: i for i, c in enumerate(ids)}
        y = np.zeros((len(ids), len(heads)), dtype=bool)
        known = np.zeros_like(y)
        for cid, pid, label in rl.select("content_id", "policy_id", "label").iter_rows():
            if cid in pos:
                y[pos[cid], hidx[pid]], known[pos[cid], hidx[pid]] = bool(label), True
        out[split] = LabelSet(ids, y, known, np.full(y.shape, "", dtype=object))
    return out


def _cap(labels: LabelSet, limit: int | None, salt: str) -> LabelSet:
    if limit is None or len(labels.content_ids) <= limit:
        return labels
    order = sorted(range(len(labels.content_ids)), key=lambda i: _hash_unit(labels.content_ids[i], salt))[:limit]
    order.sort()
    return LabelSet([labels.content_ids[i] for i in order], labels.y[order], labels.known[order], labels.signal[order])


# -- frozen-tower features ----------------------------------------------------------------------


@dataclass
class Features:
    """Pooled frozen-tower outputs of rows, float16, concatenated with offsets (compact)."""

    content_ids: list[str]
    text: np.ndarray  # [sum t_i, text_dim] float16
    text_off: np.ndarray  # [n + 1]
    image: np.ndarray  # [sum m_i, 1280] float16
    image_off: np.ndarray  # [n + 1]

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.text[self.text_off[i] : self.text_off[i + 1]],
            self.image[self.image_off[i] : self.image_off[i + 1]],
        )

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(
                f,
                content_ids=np.array(self.content_ids, dtype=str),
                text=self.text,
                text_off=self.text_off,
                image=self.image,
                image_off=self.image_off,
            )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path, allow_pickle=False) as z:
            return cls([str(c) for c in z["content_ids"]], z["text"], z["text_off"], z["image"], z["image_off"])


def _row_key(row: dict[str, Any]) -> str:
    """Content hash of one backlog row's model inputs (keys the on-disk feature cache)."""
    h = hashlib.sha256()
    for part in (row.get("content_type") or "", row.get("text") or ""):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for blob in [row.get("image"), *(row.get("frames") or [])]:
        h.update(hashlib.sha256(blob or b"").digest())
    return h.hexdigest()[:32]


def extract_features(
    model: Any, rows: dict[str, list[Any]], *, progress: Progress, batch_rows: int = 512
) -> tuple[list[tuple[np.ndarray, np.ndarray] | None], list[str]]:
    """Run the model's frozen towers over rows; per row (text tokens, image tokens) or None + reason."""
    pre = model.preprocessor()
    n = len(rows["content_id"])
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n
    reasons = [""] * n
    t0 = time.perf_counter()
    for start in range(0, n, batch_rows):
        chunk = {c: v[start : start + batch_rows] for c, v in rows.items()}
        prepared = pre(chunk)
        for e in prepared.errors:
            reasons[start + e.index] = f"{e.error_class}: {e.message}"
        if len(prepared):
            text, image = model.encode_towers(prepared)
            for k, i in enumerate(prepared.index):
                out[start + i] = (text[k].numpy(), image[k].numpy())
        done = min(n, start + batch_rows)
        rate = done / max(time.perf_counter() - t0, 1e-9)
        progress(f"  towers: {done}/{n} rows ({rate:.1f} rows/s, text padding {model.padding.padding_share:.1%})")
    return out, reasons


def _load_cache(folder: Path, digest: str) -> dict[str, tuple[np.ndarray, np.ndarray] | str]:
    found: dict[str, tuple[np.ndarray, np.ndarray] | str] = {}
    for shard in sorted(folder.glob(f"features-{digest}-*.npz")):
        f = Features.load(shard)
        for i, key in enumerate(f.content_ids):
            found[key] = f.row(i)
        skipped = shard.with_suffix(".skipped.json")
        if skipped.is_file():
            found.update(json.loads(skipped.read_text()))
    return found


def _cached_features(
    model: Any, lake: Lake, ids: list[str], cfg: TrainConfig, progress: Progress
) -> tuple[Features, dict[str, str], float]:
    """Tower outputs of the backlog rows ``ids``: from the cache folder where their content
    was seen before (same towers), computed otherwise. Returns (features, skipped id -> reason, seconds)."""
    import polars as pl

    backlog = _read_delta(lake, "backlog", "the rows the labels name")
    backlog = backlog.filter(pl.col("content_id").is_in(ids)).select(
        [c for c in _BACKLOG_COLUMNS if c in backlog.columns]
    )
    backlog = backlog.unique(subset=["content_id"], keep="first", maintain_order=True)
    missing = len(set(ids)) - backlog.height
    if missing:
        progress(f"  warning: {missing} labelled content ids are not in the backlog; they are skipped")
    rows = {c: backlog[c].to_list() for c in backlog.columns}
    keys = [_row_key({c: rows[c][i] for c in rows}) for i in range(backlog.height)]
    digest = model.tower_digest()
    folder = Path(cfg.feature_cache) if cfg.feature_cache else None
    cached = _load_cache(folder, digest) if folder is not None and folder.is_dir() else {}
    todo = [i for i, k in enumerate(keys) if k not in cached]
    progress(f"  towers: {backlog.height - len(todo)} rows cached, {len(todo)} to compute")
    t0 = time.perf_counter()
    # Shards of SHARD_ROWS rows: an interrupted run keeps what it computed.
    for part in range(0, len(todo), SHARD_ROWS):
        idx = todo[part : part + SHARD_ROWS]
        progress(f"  towers: rows {part + 1}-{part + len(idx)} of {len(todo)}")
        fresh, reasons = extract_features(model, {c: [v[i] for i in idx] for c, v in rows.items()}, progress=progress)
        new_rows = [(keys[i], f) for i, f in zip(idx, fresh, strict=True) if f is not None]
        new_skips = {keys[i]: r for i, f, r in zip(idx, fresh, reasons, strict=True) if f is None}
        for key, feat in new_rows:
            cached[key] = feat
        cached.update(new_skips)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256("".join(keys[i] for i in idx).encode()).hexdigest()[:12]
            shard = folder / f"features-{digest}-{name}.npz"
            _assemble([k for k, _ in new_rows], [f for _, f in new_rows], model).save(shard)
            shard.with_suffix(".skipped.json").write_text(json.dumps(new_skips))
    seconds = time.perf_counter() - t0
    good = [(cid, cached[k]) for cid, k in zip(rows["content_id"], keys, strict=True) if not isinstance(cached[k], str)]
    skipped = {
        cid: str(cached[k]) for cid, k in zip(rows["content_id"], keys, strict=True) if isinstance(cached[k], str)
    }
    feats = _assemble([c for c, _ in good], [f for _, f in good], model)  # type: ignore[misc]
    return feats, skipped, seconds


def _assemble(ids: list[str], rows: list[tuple[np.ndarray, np.ndarray]], model: Any) -> Features:
    t_off = np.r_[0, np.cumsum([t.shape[0] for t, _ in rows])].astype(np.int64)
    i_off = np.r_[0, np.cumsum([m.shape[0] for _, m in rows])].astype(np.int64)
    text_dim, image_dim = model.cfg.fusion.text_dim, model.cfg.fusion.image_dim
    return Features(
        ids,
        np.concatenate([t for t, _ in rows]).astype(np.float16) if rows else np.zeros((0, text_dim), np.float16),
        t_off,
        np.concatenate([m for _, m in rows]).astype(np.float16) if rows else np.zeros((0, image_dim), np.float16),
        i_off,
    )


# -- fusion training ------------------------------------------------------------------------------


def _batch(feats: Features, rows: list[int]) -> tuple[list[Any], list[Any]]:
    import torch

    pairs = [feats.row(i) for i in rows]
    return [torch.from_numpy(t).float() for t, _ in pairs], [torch.from_numpy(m).float() for _, m in pairs]


def fit_probe(
    model: Any,
    feats: Features,
    rows: list[int],
    y: np.ndarray,
    known: np.ndarray,
    cfg: TrainConfig,
    languages: list[str | None] | None = None,
) -> None:
    """Fit ``model.fusion.probe`` (if the model has one) on the pooled vectors of ``rows``.

    ``languages``: the language of each of ``rows`` (None: unknown); every language with a
    training text gets a text offset in the probe (see :mod:`pipelines.model.probe`).
    """
    import torch

    from pipelines.model.probe import fit_probe as fit
    from pipelines.model.probe import language_index

    if model.fusion.probe is None:
        return
    if languages is not None:
        with_text = {lang for lang, r in zip(languages, rows, strict=True) if lang and feats.row(r)[0].shape[0]}
        model.set_probe_languages(sorted(with_text))
    probe = model.fusion.probe
    with torch.no_grad():
        pooled = torch.cat([probe.pooled(*_batch(feats, rows[s : s + 1024])) for s in range(0, len(rows), 1024)])
    yt = torch.from_numpy(y.astype(np.float32))
    lang = language_index(languages, probe.languages, len(rows))
    fit(probe, pooled, yt, torch.from_numpy(known.astype(np.float32)), c=cfg.probe_c, lang=lang)


def fit_fusion(
    model: Any,
    feats: Features,
    rows: list[int],
    y: np.ndarray,
    known: np.ndarray,
    cfg: TrainConfig,
    progress: Progress,
    languages: list[str | None] | None = None,
) -> None:
    """Train ``model.fusion``'s transformer and heads on cached features of ``rows`` (labels ``y``,
    mask ``known``); its probe, if any, is fitted by :func:`fit_probe` and left alone here.
    ``languages`` (one per row): text tokens are centred by the probe's language offsets, as in scoring."""
    import torch

    torch.manual_seed(cfg.seed)
    fusion = model.fusion
    fusion.train()
    params = fusion.transformer_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )
    yt = torch.from_numpy(y.astype(np.float32))
    kt = torch.from_numpy(known.astype(np.float32))
    # Rare heads: weigh positives by sqrt(neg/pos), capped, so they are not drowned by negatives.
    pos = (yt * kt).sum(0)
    neg = ((1 - yt) * kt).sum(0)
    pos_weight = torch.sqrt(neg / pos.clamp(min=1)).clamp(1.0, 10.0)
    rng = np.random.default_rng(cfg.seed)
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(rows))
        total_loss = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            text, images = _batch(feats, [rows[i] for i in idx])
            if languages is not None:
                text = fusion.centre(text, [languages[i] for i in idx])
            logits = fusion.transformer_logits(text, images)
            loss_cells = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, yt[idx], pos_weight=pos_weight, reduction="none"
            )
            loss = (loss_cells * kt[idx]).sum() / kt[idx].sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
        progress(f"  epoch {epoch + 1}/{cfg.epochs}: loss {total_loss / len(rows):.4f}")
    fusion.eval()


def predict(
    model: Any, feats: Features, rows: list[int], batch_size: int = 256, languages: list[str | None] | None = None
) -> np.ndarray:
    """Scores of cached rows, ``[len(rows), heads]`` (``languages``: each row's, as in scoring)."""
    out = [
        model.score_features(
            *_batch(feats, rows[s : s + batch_size]), None if languages is None else languages[s : s + batch_size]
        )
        for s in range(0, len(rows), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(model.heads)), np.float32)


# -- evaluation ------------------------------------------------------------------------------------


def evaluate(
    heads: tuple[str, ...],
    scores: np.ndarray,
    labels: LabelSet,
    languages: list[str],
    *,
    min_positives: int,
    trained_languages: dict[str, set[str]] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Metrics (``auc_<head>``, ``ap_<head>``, ``auc_<head>_<lang>``), per-language, per-signal and
    zero-shot tables.

    ``trained_languages`` maps a head to the languages that had a training positive of it;
    the zero-shot table lists, per head, the held-out languages outside that set (the model
    never saw a violation of that policy in that language) with their counts and AUC.
    """
    metrics: dict[str, float] = {}
    per_language: list[dict[str, Any]] = []
    per_signal: list[dict[str, Any]] = []
    zero_shot: list[dict[str, Any]] = []
    langs = np.array(languages, dtype=object)
    for j, head in enumerate(heads):
        known = labels.known[:, j]
        y, s = labels.y[known, j], scores[known, j]
        auc, ap = roc_auc(y, s), average_precision(y, s)
        if not math.isnan(auc):
            metrics[f"auc_{head}"] = auc
        if not math.isnan(ap):
            metrics[f"ap_{head}"] = ap
        metrics[f"heldout_positives_{head}"] = float(y.sum())
        for lang in sorted(set(langs[known])):
            m = langs[known] == lang
            n_pos = int(y[m].sum())
            n_neg = int(m.sum()) - n_pos
            enough = n_pos >= min_positives and n_neg >= min_positives
            row = {"head": head, "language": lang, "rows": int(m.sum()), "positives": n_pos}
            row["auc"] = roc_auc(y[m], s[m]) if enough else None
            row["ap"] = average_precision(y[m], s[m]) if enough else None
            per_language.append(row)
            if enough:
                metrics[f"auc_{head}_{lang}"] = float(row["auc"])
            if trained_languages is not None and lang not in trained_languages.get(head, set()):
                zero_shot.append({**row, "note": "no training positive of this head in this language"})
        sig = labels.signal[known, j]
        for kind in sorted({str(k) for k in sig[y]} - {"", "none"}):
            # Positives whose signal is `kind` against all negatives: where the model sees it.
            m = ~y | (sig == kind)
            per_signal.append(
                {"head": head, "signal": kind, "positives": int((y & m).sum()), "auc": roc_auc(y[m], s[m])}
            )
    return metrics, per_language, per_signal, zero_shot


def trained_languages(heads: tuple[str, ...], labels: LabelSet, languages: list[str]) -> dict[str, set[str]]:
    """Per head, the languages that have at least one training positive of it."""
    langs = np.array(languages, dtype=object)
    return {head: {str(x) for x in langs[labels.y[:, j] & labels.known[:, j]]} for j, head in enumerate(heads)}


# -- the job --------------------------------------------------------------------------------------


def train_starter(lake: Lake, cfg: TrainConfig, *, progress: Progress = print) -> TrainSummary:
    """Train, evaluate, log and register a starter model on ``lake`` (see module docstring)."""
    import torch

    from pipelines.model.starter import StarterModel
    from pipelines.model.store import _client, ensure_experiment, register_model

    if not 1 <= cfg.threads <= 256:
        raise BadConfigError(f"threads must be in [1, 256], got {cfg.threads}")
    torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    source = "ground_truth" if cfg.labels == "ground_truth" else "review_labels"
    progress(f"train: reading labels from {lake.path(source)}")
    splits = (
        _labels_from_ground_truth(lake, cfg.heads)
        if cfg.labels == "ground_truth"
        else _labels_from_review(lake, cfg.heads)
    )
    train_l = _cap(splits["train"], cfg.max_rows, "train-sample")
    held_l = _cap(splits["heldout"], cfg.max_heldout_rows, "heldout-sample")
    if not train_l.content_ids or not held_l.content_ids:
        raise BadInputError(
            f"labels have {len(train_l.content_ids)} train and {len(held_l.content_ids)} held-out items; both are needed"
        )
    progress(f"train: {len(train_l.content_ids)} train and {len(held_l.content_ids)} held-out items")

    try:
        model = StarterModel.build(cfg.heads, text_tower=cfg.text_tower, name=cfg.model_name, seed=cfg.seed)
    except (OSError, ValueError) as exc:
        raise BadConfigError(f"cannot build the starter model: {exc}") from None
    progress("train: running the frozen towers once over train + held-out rows")
    feats, skipped, feature_seconds = _cached_features(
        model, lake, train_l.content_ids + held_l.content_ids, cfg, progress
    )
    pos = {c: i for i, c in enumerate(feats.content_ids)}

    def rows_of(labels: LabelSet) -> tuple[list[int], np.ndarray]:
        keep = np.array([c in pos for c in labels.content_ids], dtype=bool)
        return [pos[c] for c in labels.content_ids if c in pos], keep

    train_rows, train_keep = rows_of(train_l)
    held_rows, held_keep = rows_of(held_l)
    if not train_rows or not held_rows:
        raise BadInputError("no usable rows left after preprocessing (every labelled row was rejected)")

    import polars as pl

    langs_df = _read_delta(lake, "backlog", "languages").filter(pl.col("content_id").is_in(feats.content_ids))
    lang_of = dict(zip(langs_df["content_id"].to_list(), langs_df["language"].to_list(), strict=False))
    row_language = [str(lang_of[c]) if lang_of.get(c) else None for c in feats.content_ids]

    t0 = time.perf_counter()
    if model.fusion.probe is not None:
        progress(f"train: fitting the linear probe on {len(train_rows)} rows")
        train_languages = [row_language[r] for r in train_rows]
        fit_probe(model, feats, train_rows, train_l.y[train_keep], train_l.known[train_keep], cfg, train_languages)
        centred = model.cfg.fusion.probe_languages
        progress(f"train: probe text centred per language for {len(centred)} languages ({', '.join(centred)})")
    progress(f"train: fitting fusion + heads for {cfg.epochs} epochs on {len(train_rows)} rows")
    fit_fusion(
        model,
        feats,
        train_rows,
        train_l.y[train_keep],
        train_l.known[train_keep],
        cfg,
        progress,
        [row_language[r] for r in train_rows],
    )
    train_seconds = time.perf_counter() - t0

    scores = predict(model, feats, held_rows, languages=[row_language[r] for r in held_rows])
    held = LabelSet(
        [c for c, k in zip(held_l.content_ids, held_keep, strict=True) if k],
        held_l.y[held_keep],
        held_l.known[held_keep],
        held_l.signal[held_keep],
    )
    train = LabelSet(
        [c for c, k in zip(train_l.content_ids, train_keep, strict=True) if k],
        train_l.y[train_keep],
        train_l.known[train_keep],
        train_l.signal[train_keep],
    )
    languages = [str(lang_of.get(c) or "und") for c in held.content_ids]
    seen = trained_languages(cfg.heads, train, [str(lang_of.get(c) or "und") for c in train.content_ids])
    metrics, per_language, per_signal, zero_shot = evaluate(
        cfg.heads, scores, held, languages, min_positives=cfg.min_language_positives, trained_languages=seen
    )
    metrics.update(
        {
            "feature_seconds": feature_seconds,
            "train_seconds": train_seconds,
            "text_padding_share": model.padding.padding_share,
            "total_seconds": time.perf_counter() - t_start,
        }
    )

    progress("train: logging to MLflow and registering the model")
    client = _client(lake)
    run = client.create_run(ensure_experiment(lake), run_name=f"train-{cfg.model_name}")
    run_id = run.info.run_id
    try:
        params = {k: v for k, v in asdict(cfg).items() if k != "heads"}
        params.update(
            {
                "heads": ",".join(cfg.heads),
                "train_rows": len(train_rows),
                "heldout_rows": len(held_rows),
                "skipped_rows": len(skipped),
                "tower_digest": model.tower_digest(),
                "starter_config": json.dumps(model.cfg.to_json()),
            }
        )
        with tempfile.TemporaryDirectory(prefix="trustbatch-train-") as tmp:
            tables = Path(tmp) / "evaluation"
            tables.mkdir()
            pl.DataFrame(per_language).write_csv(tables / "per_language.csv")
            pl.DataFrame(per_signal).write_csv(tables / "per_signal.csv")
            pl.DataFrame(zero_shot, schema=_ZERO_SHOT_SCHEMA).write_csv(tables / "zero_shot.csv")
            (tables / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
            if skipped:
                (tables / "skipped_rows.json").write_text(json.dumps(skipped, indent=1))
            client.log_artifacts(run_id, str(tables), artifact_path="evaluation")
        version = register_model(
            model, lake=lake, name=cfg.model_name, promote=cfg.promote, run_id=run_id, params=params, metrics=metrics
        )
        client.set_terminated(run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    return TrainSummary(
        model_name=cfg.model_name,
        version=version,
        run_id=run_id,
        promoted=cfg.promote,
        train_rows=len(train_rows),
        heldout_rows=len(held_rows),
        skipped_rows=len(skipped),
        feature_seconds=feature_seconds,
        train_seconds=train_seconds,
        padding_share=model.padding.padding_share,
        metrics=metrics,
        per_language=per_language,
        per_signal=per_signal,
        zero_shot=zero_shot,
    )
