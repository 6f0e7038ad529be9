"""Row synthesis in two deterministic steps: a *plan* (metadata and labels) and a *render*.

The plan of batch ``b`` draws from its own RNG stream, so the ground-truth pass can re-plan
a batch without rendering text or images, and both passes agree on every label. The render
draws from a second stream. Nothing depends on batches before ``b``: memory and work per
batch are constant, whatever the number of rows.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from functools import lru_cache

from pipelines.generate.benign import HARD_NEGATIVES, LANGUAGE_WEIGHTS, SENTENCES, SHORT, UNSPACED
from pipelines.generate.config import GenerateConfig
from pipelines.generate.images import BENIGN_MOTIFS, IMAGE_FAMILIES, MINOR_CONTEXT_MOTIFS, image_pool
from pipelines.generate.templates import Family, families_of, fill, heldout_ids
from pipelines.heads import DEFAULT_HEADS
from pipelines.markets import ALL_MARKETS, transfer_zone

# Base prevalence per head, as a share of good rows (0.1%-5% each, realistic for a backlog
# that has not been filtered yet). cross_border_data follows from personal_data + markets.
BASE_RATES: dict[str, float] = {
    "child_safety": 0.003,
    "misinformation": 0.025,
    "hate": 0.015,
    "violence": 0.015,
    "scams": 0.035,
    "self_harm": 0.006,
    "personal_data": 0.03,
}
MAX_RATE = 0.30  # --enrich caps each head here...
MAX_TOTAL = 0.90  # ...and all heads together here, so benign rows never vanish.

# Where the signal of a positive is: probability that it is in the image (else the text).
# child_safety is always "both": a minor context in the image and a secrecy text.
IMAGE_SIGNAL_SHARE: dict[str, float] = {"violence": 0.45, "personal_data": 0.5}

CONTENT_TYPES: tuple[tuple[str, float], ...] = (("TEXT", 0.55), ("IMAGE", 0.32), ("VIDEO", 0.13))
MULTI_MARKET_SHARE = 0.12
# Doxxing spreads: personal-data posts are shared across borders more often.
MULTI_MARKET_SHARE_PERSONAL = 0.35
HARD_NEGATIVE_SHARE = 0.08
# Benign rows that carry half of a child-safety pattern (secrecy text without a minor
# context): hard negatives that force the model to look at both modalities.
HALF_CHILD_SAFETY_SHARE = 0.004
MINOR_CONTEXT_IMAGE_SHARE = 0.12
CAPTION_SHARE = 0.7
ANY_REGION_SHARE = 0.25  # share of rows whose region ignores the language (travel, diaspora)

# Typical upload regions per language (before the ANY_REGION_SHARE mix).
LANGUAGE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "US", "GB", "GB", "IE", "IN", "MT", "NL", "SE", "DK", "FI"),
    "es": ("ES", "ES", "US"), "de": ("DE", "DE", "AT", "LU", "LI"), "fr": ("FR", "FR", "BE", "LU"),
    "pt": ("PT", "BR", "BR"), "it": ("IT",), "pl": ("PL",), "ru": ("LV", "EE", "LT", "DE", "CY"),
    "ar": ("FR", "DE", "SE", "BE", "NL"), "hi": ("IN", "IN", "GB"), "zh": ("US", "NL", "IT", "GB"),
    "ja": ("JP",), "th": ("US", "DE", "SE"), "id": ("ID", "ID", "NL"), "tr": ("DE", "AT", "BG", "GR"),
}  # fmt: skip
SPLIT_SALT = "trustbatch/benign-split"
# Share of non-English violating rows that pick a family translated into their language.
PREFER_TRANSLATED = 0.4


@dataclass
class RowPlan:
    """Everything about one good row that its labels depend on."""

    index: int
    content_id: str
    created_us: int
    region: str
    markets: list[str]
    language: str
    content_type: str
    family: str
    split: str
    positive: str | None = None
    """The head this row violates (at most one), or None."""
    signal: str = "none"
    text_family: Family | None = None
    """Family whose template the text carries (also for half child-safety negatives)."""
    hard_negative: str | None = None
    motif: str | None = None
    """Image motif of IMAGE rows and of the salient frames of VIDEO rows."""
    caption: bool = True
    cross_border: bool = False
    """personal_data AND distributed outside the transfer zone of its region."""


def effective_rates(enrich: float) -> dict[str, float]:
    """Per-head prevalence after ``--enrich``: each capped at MAX_RATE, all at MAX_TOTAL."""
    rates = {h: min(MAX_RATE, p * enrich) for h, p in BASE_RATES.items()}
    total = sum(rates.values())
    if total > MAX_TOTAL:
        rates = {h: p * MAX_TOTAL / total for h, p in rates.items()}
    return rates


@lru_cache(maxsize=1)
def heldout_families() -> frozenset[str]:
    """Family ids in the held-out split: ~30% of text families and of image families per policy."""
    out: set[str] = set()
    for head in DEFAULT_HEADS:
        out |= heldout_ids([f.id for f in families_of(head)]) if families_of(head) else set()
        if head in IMAGE_FAMILIES:
            out |= heldout_ids([f"{head}/img_{m}" for m in IMAGE_FAMILIES[head]])
    return frozenset(out)


def split_of(family: str, content_id: str) -> str:
    """Violating families are split by family; benign rows by a hash of their id."""
    if not family.startswith("benign/"):
        return "heldout" if family in heldout_families() else "train"
    return "heldout" if zlib.crc32(f"{SPLIT_SALT}/{content_id}".encode()) % 10 < 3 else "train"


def id_tag(seed: int) -> str:
    """8 hex digits naming the seed inside every content id (ids differ across seeds)."""
    return f"{zlib.crc32(f'trustbatch/{seed}'.encode()):08x}"


def _weighted(rnd: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    u = rnd.random() * sum(w for _, w in items)
    for name, w in items:
        u -= w
        if u < 0:
            return name
    return items[-1][0]


_LANGS: tuple[tuple[str, float], ...] = tuple(LANGUAGE_WEIGHTS.items())


def _pick_family(rnd: random.Random, head: str, plan: RowPlan) -> Family:
    """A text family of ``head``; the post switches to English when the family has no translation.

    Translated families are preferred for non-English rows only part of the time: always
    preferring them would make the one or two translated families of a policy dominate it.
    """
    fams = families_of(head)
    if plan.language != "en":
        local = [f for f in fams if plan.language in f.translations]
        if local and rnd.random() < PREFER_TRANSLATED:
            return rnd.choice(local)
    fam = rnd.choice(fams)
    if plan.language not in fam.translations:
        plan.language = "en"  # an English post, whatever the region
    return fam


def plan_row(rnd: random.Random, index: int, cfg: GenerateConfig, rates: dict[str, float], tag: str) -> RowPlan:
    """Draw one good row's metadata and labels."""
    content_id = f"{tag}-{index:010d}"
    lang = _weighted(rnd, _LANGS)
    region = rnd.choice(ALL_MARKETS) if rnd.random() < ANY_REGION_SHARE else rnd.choice(LANGUAGE_REGIONS[lang])
    created = int(cfg.start.timestamp() * 1_000_000) + int(rnd.random() * cfg.days * 86_400_000_000)
    plan = RowPlan(index, content_id, created, region, [region], lang, _weighted(rnd, CONTENT_TYPES), "", "")

    u = rnd.random()
    for name, p in rates.items():
        u -= p
        if u < 0:
            plan.positive = name
            break
    head = plan.positive
    if head is None:
        _plan_benign(rnd, plan)
    elif head == "child_safety":
        plan.signal = "both"
        plan.text_family = _pick_family(rnd, head, plan)
        plan.family = plan.text_family.id
        plan.motif = rnd.choice(MINOR_CONTEXT_MOTIFS)
        plan.content_type = "IMAGE" if rnd.random() < 0.75 else "VIDEO"
    elif rnd.random() < IMAGE_SIGNAL_SHARE.get(head, 0.0):
        plan.signal = "image"
        plan.motif = rnd.choice(IMAGE_FAMILIES[head])
        plan.family = f"{head}/img_{plan.motif}"
        if plan.content_type == "TEXT":
            plan.content_type = "IMAGE" if rnd.random() < 0.7 else "VIDEO"
    else:
        plan.signal = "text"
        plan.text_family = _pick_family(rnd, head, plan)
        plan.family = plan.text_family.id
    if plan.content_type != "TEXT" and plan.motif is None:
        plan.motif = rnd.choice(MINOR_CONTEXT_MOTIFS) if rnd.random() < MINOR_CONTEXT_IMAGE_SHARE else None
        plan.motif = plan.motif or rnd.choice(BENIGN_MOTIFS)
    # Captions are optional on media, except where the text carries the signal.
    plan.caption = plan.content_type == "TEXT" or plan.text_family is not None or rnd.random() < CAPTION_SHARE
    plan.caption = plan.caption or plan.hard_negative is not None

    share = MULTI_MARKET_SHARE_PERSONAL if head == "personal_data" else MULTI_MARKET_SHARE
    if rnd.random() < share:
        extra = rnd.sample([m for m in ALL_MARKETS if m != region], rnd.randint(1, 4))
        plan.markets = [region, *extra]
    plan.split = split_of(plan.family, content_id)
    zone = transfer_zone(region)
    plan.cross_border = head == "personal_data" and any(m not in zone for m in plan.markets)
    return plan


def _plan_benign(rnd: random.Random, plan: RowPlan) -> None:
    u = rnd.random()
    if u < HALF_CHILD_SAFETY_SHARE:
        # Secrecy text with no minor context: not a violation on its own.
        plan.text_family = _pick_family(rnd, "child_safety", plan)
        plan.family = plan.text_family.id
        if plan.content_type != "TEXT":
            plan.motif = rnd.choice(BENIGN_MOTIFS)
        return
    if u < HALF_CHILD_SAFETY_SHARE + HARD_NEGATIVE_SHARE:
        options = [k for k, by_lang in HARD_NEGATIVES.items() if plan.language in by_lang]
        if options:
            plan.hard_negative = rnd.choice(options)
            plan.family = f"benign/{plan.hard_negative}"
            if plan.hard_negative == "school_event" and plan.content_type != "TEXT":
                plan.motif = rnd.choice(MINOR_CONTEXT_MOTIFS)
            return
    plan.family = "benign/chatter"


# --- render -----------------------------------------------------------------------------
def _tokens(text: str, lang: str) -> int:
    return max(1, len(text) // 2) if lang in UNSPACED else len(text.split())


def _length(rnd: random.Random, median: float, sigma: float, hi: int) -> int:
    """Heavy-tailed (lognormal) token budget: mostly short posts, a few of several hundred tokens."""
    return max(1, min(hi, int(rnd.lognormvariate(math.log(median), sigma))))


_STRIDES: dict[int, tuple[int, ...]] = {
    n: tuple(d for d in range(1, n) if math.gcd(d, n) == 1) or (1,) for n in {len(b) for b in SENTENCES.values()}
}


def render_text(rnd: random.Random, plan: RowPlan) -> str | None:
    """The text (or caption) of a row: filler sentences around the violating / hard-negative one."""
    if not plan.caption:
        return None
    lang = plan.language
    budget = _length(rnd, 20, 1.0, 600) if plan.content_type == "TEXT" else _length(rnd, 8, 0.8, 120)
    core: str | None = None
    if plan.text_family is not None:
        fam = plan.text_family
        options = fam.paraphrases if lang == "en" else fam.translations[lang]
        core = fill(rnd.choice(options), rnd)
    elif plan.hard_negative is not None:
        core = fill(rnd.choice(HARD_NEGATIVES[plan.hard_negative][lang]), rnd)
    if core is None and budget <= 5:
        return rnd.choice(SHORT[lang])
    parts: list[str] = []
    used = _tokens(core, lang) if core else 0
    bank = SENTENCES[lang]
    # Walk the bank from a random start with a random stride coprime to its size: no sentence
    # repeats before all were used, without shuffling a copy per row.
    k, stride = rnd.randrange(len(bank)), _STRIDES[len(bank)][rnd.randrange(len(_STRIDES[len(bank)]))]
    while used < budget:
        s = fill(bank[k % len(bank)], rnd)
        k += stride
        parts.append(s)
        used += _tokens(s, lang)
    if core is not None:
        parts.insert(rnd.randint(0, len(parts)), core)
    return ("" if lang in UNSPACED else " ").join(parts)


def render_media(rnd: random.Random, plan: RowPlan, cfg: GenerateConfig) -> tuple[bytes | None, list[bytes] | None]:
    """(image, frames) of a row from the seed's pre-encoded pool."""
    if plan.content_type == "TEXT" or plan.motif is None:
        return None, None
    pool = image_pool(cfg.seed, cfg.images_per_motif)
    if plan.content_type == "IMAGE":
        return pool[plan.motif][rnd.randrange(cfg.images_per_motif)], None
    n = rnd.randint(2, 8)
    background = rnd.choice(BENIGN_MOTIFS) if plan.signal != "none" else plan.motif
    first = rnd.randrange(cfg.images_per_motif)
    # Consecutive pool variants of one motif stand in for the keyframes of one shot.
    frames = [pool[background][(first + k) % cfg.images_per_motif] for k in range(n)]
    if plan.signal != "none":
        # At least half of the keyframes show the salient motif, so a scorer that samples a
        # few keyframes sees it.
        for k in rnd.sample(range(n), rnd.randint(max(1, n // 2), n)):
            frames[k] = pool[plan.motif][rnd.randrange(cfg.images_per_motif)]
    return None, frames
