"""Known material in a generated backlog: bank files, near-duplicate rows, look-alikes, their truth.

With ``GenerateConfig.known = n``, each default bank (``known_csam`` for child_safety,
``known_terror`` for terrorist_content) gets ``n`` generated known images
(``pipelines.generate.known_media``); the lake gains

- ``known_banks/<bank>.csv``: the bank file of those images' PDQ hashes (``id,pdq,source``), ready
  for ``batchjobs hashes import --bank <bank>``;
- one backlog IMAGE row per known image and transform (re-encoded, resized, shrunk, recoloured,
  mirrored; ``TRANSFORMS``): content id ``<tag>-known-<bank>-<n>-<transform>``;
- ``2 n`` benign look-alikes per bank (new drawings of the same motifs): ``<tag>-lookalike-<bank>-<n>``.

``ground_truth`` marks them with the fixed schema: ``family`` is ``<bank>_copy/<transform>`` for a
copy and ``benign/known_lookalike`` for a look-alike; ``signal`` is ``hash`` on the true label
(child_safety for ``known_csam`` copies, ``terrorist_content`` for ``known_terror`` copies, a
target added for these rows) and ``none`` elsewhere. Every such row is in the ``heldout`` split, so
a model is never trained to call a drawing a violation because a bank lists it. Everything is
deterministic for the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa

from pipelines import storage
from pipelines.generate.config import GenerateConfig
from pipelines.generate.known_media import TRANSFORMS, make_known_media
from pipelines.generate.rows import id_tag
from pipelines.hashes.pdq import hash_bytes
from pipelines.heads import GROUND_TRUTH_TARGETS
from pipelines.lake import Lake
from pipelines.schema import BACKLOG, GROUND_TRUTH

BANKS: dict[str, str] = {"known_csam": "child_safety", "known_terror": "terrorist_content"}
"""Default bank -> the policy its copies violate (the default pack's bindings)."""
TARGETS: tuple[str, ...] = (*GROUND_TRUTH_TARGETS, "terrorist_content")
LOOK_ALIKE_FAMILY = "benign/known_lookalike"
SIGNAL = "hash"
_REGIONS = ("DE", "FR", "NL", "IE", "PL", "US", "GB", "ES", "IT", "SE")


def bank_seed(seed: int, bank: str) -> int:
    """The known-media seed of ``bank``: different images per bank, the same for a seed."""
    return seed * 2 + (1 if bank == "known_csam" else 2)


def bank_path(lake: Lake, bank: str) -> str:
    return storage.join(lake.root, "known_banks", f"{bank}.csv")


def _rows(cfg: GenerateConfig) -> Iterator[tuple[dict[str, Any], str, str | None]]:
    """(backlog row, family, bank) of every known-material row, in a fixed order."""
    tag = id_tag(cfg.seed)
    rnd = random.Random(f"trustbatch/known/{cfg.seed}")
    start_us = int(cfg.start.timestamp() * 1_000_000)
    span_us = int(timedelta(days=cfg.days).total_seconds() * 1_000_000)

    def row(content_id: str, image: bytes) -> dict[str, Any]:
        region = rnd.choice(_REGIONS)
        markets = [region] if rnd.random() < 0.8 else sorted({region, rnd.choice(_REGIONS)})
        return {
            "content_id": content_id,
            "created_at": start_us + rnd.randrange(span_us),
            "region": region,
            "markets": markets,
            "language": "en",
            "content_type": "IMAGE",
            "text": None,
            "image": image,
            "frames": None,
        }

    for bank in BANKS:
        media = make_known_media(bank_seed(cfg.seed, bank), n_known=cfg.known, n_look_alikes=2 * cfg.known)
        for dup in media.near_duplicates:
            cid = f"{tag}-known-{bank}-{dup.known:06d}-{dup.transform}"
            yield row(cid, dup.data), f"{bank}_copy/{dup.transform}", bank
        for n, look in enumerate(media.look_alikes):
            yield row(f"{tag}-lookalike-{bank}-{n:06d}", look.data), LOOK_ALIKE_FAMILY, None


def backlog_batch(cfg: GenerateConfig) -> pa.RecordBatch:
    rows = [r for r, _, _ in _rows(cfg)]
    return pa.RecordBatch.from_pydict({n: [r[n] for r in rows] for n in BACKLOG.names}, schema=BACKLOG)


def _ids(cfg: GenerateConfig) -> Iterator[tuple[str, str, str | None]]:
    """(content_id, family, bank) of the rows of :func:`_rows`, in its order, without drawing images."""
    tag = id_tag(cfg.seed)
    for bank in BANKS:
        for n in range(cfg.known):
            for transform in TRANSFORMS:
                yield f"{tag}-known-{bank}-{n:06d}-{transform}", f"{bank}_copy/{transform}", bank
        for n in range(2 * cfg.known):
            yield f"{tag}-lookalike-{bank}-{n:06d}", LOOK_ALIKE_FAMILY, None


def truth_batch(cfg: GenerateConfig) -> pa.RecordBatch:
    cols: dict[str, list[Any]] = {n: [] for n in GROUND_TRUTH.names}
    for content_id, family, bank in _ids(cfg):
        violated = BANKS[bank] if bank is not None else None
        for target in TARGETS:
            cols["content_id"].append(content_id)
            cols["policy_id"].append(target)
            cols["label"].append(target == violated)
            cols["family"].append(family)
            cols["signal"].append(SIGNAL if target == violated else "none")
            cols["split"].append("heldout")
    return pa.RecordBatch.from_pydict(cols, schema=GROUND_TRUTH)


def positives(cfg: GenerateConfig) -> dict[str, int]:
    """True labels the known rows add, per target."""
    return {policy: cfg.known * len(TRANSFORMS) for policy in BANKS.values()} if cfg.known else {}


def row_count(cfg: GenerateConfig) -> int:
    """Backlog rows of known material: per bank, one copy per known image and transform, 2 look-alikes each."""
    return len(BANKS) * cfg.known * (len(TRANSFORMS) + 2)


def write_bank_files(lake: Lake, cfg: GenerateConfig) -> dict[str, str]:
    """Write ``known_banks/<bank>.csv`` (PDQ hashes of the known images); bank -> file URI."""
    out = {}
    for bank in BANKS:
        media = make_known_media(bank_seed(cfg.seed, bank), n_known=cfg.known, per_transform=0, n_look_alikes=0)
        lines = ["id,pdq,source"] + [f"{k.key},{hash_bytes(k.data).hex},generated" for k in media.known]
        path = bank_path(lake, bank)
        storage.write_text(path, "\n".join(lines) + "\n")
        out[bank] = path
    return out
