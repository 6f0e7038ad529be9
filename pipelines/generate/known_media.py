"""Known material for hash matching: "known" images, their near duplicates, and benign look-alikes.

A hash bank lists images a team already knows (for real: lists from NCMEC, GIFCT, ...). Here the
"known" images are generated: each is a 256 px drawing of one of the generator's motifs with its
own random shapes on top, encoded as PNG. Near duplicates are what re-uploads look like: the
known image re-encoded as JPEG at quality 20-50, resized, recoloured or mirrored. Look-alikes are
fresh drawings of the same motifs in the same style (different seeds): benign images a bank must
not match. Everything is deterministic for a seed.

Who uses it: the robustness measurement (``pipelines.hashes.robustness``, docs/hashes.md) and,
once wired in, the backlog generator (near duplicates under the child-safety and
terrorist-content families, look-alikes as benign rows; ``ground_truth`` says which is which).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from pipelines.generate.images import MOTIFS

KNOWN_SIDE = 384
"""Side of the known images, in pixels."""
KNOWN_MOTIFS: tuple[str, ...] = (
    "splatter_blobs",
    "splatter_streaks",
    "blade_silhouette",
    "gun_silhouette",
    "playground",
)
"""Motifs known images are drawn from. ``school`` is left out: its drawings share one fixed layout,
and two of them came within 24-36 bits of each other (templated images are a real false-match
risk; docs/hashes.md)."""

TRANSFORMS: tuple[str, ...] = ("reencode", "resize", "shrink", "recolour", "mirror")
"""Near-duplicate transforms: JPEG q20-q50; scaled to 50-75% or 125-150%; shrunk to 30-40% (a
thumbnail: the hardest case); grayscale, saturation, brightness or a hue shift; a horizontal
mirror. Each ends in an encode (JPEG q70-90 unless said)."""


@dataclass(frozen=True)
class KnownImage:
    """A known image: what a bank's hash was computed from."""

    key: str
    """Stable id, ``known-<seed>-<n>``: a bank file's ``id``."""
    motif: str
    data: bytes
    """PNG bytes."""


@dataclass(frozen=True)
class NearDuplicate:
    """A transformed copy of a known image (should match it)."""

    known: int
    """Index into ``KnownMedia.known``."""
    transform: str
    """One of ``TRANSFORMS``."""
    detail: str
    """Parameters, e.g. ``q27`` or ``0.55x``."""
    data: bytes


@dataclass(frozen=True)
class LookAlike:
    """A benign drawing in the style of the known images (must not match any)."""

    motif: str
    data: bytes


@dataclass(frozen=True)
class KnownMedia:
    known: tuple[KnownImage, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    look_alikes: tuple[LookAlike, ...]


def _encode(img: Image.Image, fmt: str = "PNG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def _background(img: Image.Image, rnd: random.Random) -> None:
    """A diagonal-ish two-colour gradient: a textured background, so hashes have quality."""
    a = [rnd.randint(120, 255) for _ in range(3)]
    b = [rnd.randint(40, 200) for _ in range(3)]
    draw = ImageDraw.Draw(img)
    for y in range(img.height):
        t = y / max(1, img.height - 1)
        draw.line([(0, y), (img.width, y)], fill=tuple(int(a[i] + (b[i] - a[i]) * t) for i in range(3)))


def _texture(img: Image.Image, rnd: random.Random, amount: float = 0.5, grid: int = 6) -> Image.Image:
    """Blend in smooth colour noise (a ``grid`` x ``grid`` field upsampled): photos have texture.

    Flat synthetic drawings leave many of PDQ's DCT coefficients near their median, and those bits
    flip under any resampling; with texture, resizes and mirrors stay within a few bits, as on photos.
    """
    field = bytes(rnd.randrange(256) for _ in range(grid * grid * 3))
    noise = Image.frombytes("RGB", (grid, grid), field).resize(img.size, Image.Resampling.BICUBIC)
    return Image.blend(img, noise, amount)


def draw_known(motif: str, rnd: random.Random, side: int = KNOWN_SIDE) -> Image.Image:
    """One drawing of ``motif`` with random shapes and texture of its own (``side`` px square, RGB)."""
    img = Image.new("RGB", (side, side))
    _background(img, rnd)
    draw = ImageDraw.Draw(img)
    MOTIFS[motif](draw, rnd, side, side)
    for _ in range(rnd.randint(2, 5)):
        x, y, r = rnd.randint(0, side), rnd.randint(0, side), rnd.randint(side // 20, side // 6)
        fill = (rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(0, 255))
        if rnd.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=fill)
    return _texture(img, rnd)


def near_duplicate(img: Image.Image, transform: str, rnd: random.Random) -> tuple[bytes, str]:
    """``img`` after ``transform`` (one of ``TRANSFORMS``), encoded; returns (bytes, detail)."""
    if transform == "reencode":
        q = rnd.randint(20, 50)
        return _encode(img, "JPEG", q), f"q{q}"
    if transform in ("resize", "shrink"):
        choices = (0.5, 0.6, 0.75, 1.25, 1.5) if transform == "resize" else (0.3, 0.35, 0.4)
        scale = rnd.choice(choices)
        size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
        return _encode(img.resize(size, Image.Resampling.BILINEAR), "JPEG", rnd.randint(70, 90)), f"{scale}x"
    if transform == "recolour":
        kind = rnd.choice(("grayscale", "hue", "saturation", "brightness"))
        if kind == "grayscale":
            out = ImageOps.grayscale(img).convert("RGB")
        elif kind == "hue":
            h, s, v = img.convert("HSV").split()
            shift = rnd.choice((-1, 1)) * rnd.randint(10, 40)
            out = Image.merge("HSV", (h.point(lambda p: (p + shift) % 256), s, v)).convert("RGB")
        elif kind == "saturation":
            out = ImageEnhance.Color(img).enhance(rnd.choice((0.3, 1.8)))
        else:
            out = ImageEnhance.Brightness(img).enhance(rnd.choice((0.75, 1.25)))
        return _encode(out, "JPEG", rnd.randint(70, 90)), kind
    if transform == "mirror":
        return _encode(ImageOps.mirror(img), "JPEG", rnd.randint(70, 90)), "horizontal"
    raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")


def make_known_media(seed: int, *, n_known: int = 50, per_transform: int = 1, n_look_alikes: int = 200) -> KnownMedia:
    """``n_known`` known images, ``per_transform`` near duplicates of each per transform, and look-alikes.

    Deterministic for ``seed``. Look-alikes cycle through ``KNOWN_MOTIFS`` like the known images.
    """
    if n_known < 0 or per_transform < 0 or n_look_alikes < 0:
        raise ValueError(
            f"n_known, per_transform and n_look_alikes must be >= 0, got {n_known}, {per_transform}, {n_look_alikes}"
        )
    known: list[KnownImage] = []
    dups: list[NearDuplicate] = []
    for n in range(n_known):
        motif = KNOWN_MOTIFS[n % len(KNOWN_MOTIFS)]
        img = draw_known(motif, random.Random(f"known/{seed}/{n}"))
        known.append(KnownImage(f"known-{seed}-{n}", motif, _encode(img)))
        for transform in TRANSFORMS:
            for k in range(per_transform):
                data, detail = near_duplicate(img, transform, random.Random(f"dup/{seed}/{n}/{transform}/{k}"))
                dups.append(NearDuplicate(n, transform, detail, data))
    looks = []
    for n in range(n_look_alikes):
        motif = KNOWN_MOTIFS[n % len(KNOWN_MOTIFS)]
        img = draw_known(motif, random.Random(f"lookalike/{seed}/{n}"))
        looks.append(LookAlike(motif, _encode(img, "JPEG", 85)))
    return KnownMedia(tuple(known), tuple(dups), tuple(looks))
