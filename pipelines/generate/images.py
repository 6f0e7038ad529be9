"""A pool of small, really encoded PNG/JPEG images per visual motif, drawn with PIL.

Drawing and encoding an image costs about a millisecond, so the generator draws a few dozen
variants per motif once per seed and picks from the pool for every row: 100,000 rows stay
well under the two-minute budget, and rows still vary (size, colours, layout, format).

Motifs are simple on purpose (shapes, gradients, glyph rows) yet distinct enough for a
frozen ImageNet encoder at ~128 px: red splatter blobs and weapon silhouettes (violence),
ID-card layouts and rendered phone numbers (personal data), schools and playgrounds (the
minor context of child safety, benign on their own), and benign scenes, including hard
negatives (red fruit, tickets without a photo box).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
_Draw = Callable[[ImageDraw.ImageDraw, random.Random, int, int], None]


def _rgb(rnd: random.Random, lo: int = 0, hi: int = 255) -> Color:
    return (rnd.randint(lo, hi), rnd.randint(lo, hi), rnd.randint(lo, hi))


def _gradient(img: Image.Image, rnd: random.Random, a: Color, b: Color) -> None:
    """Vertical gradient from ``a`` to ``b`` drawn line by line (cheap at these sizes)."""
    draw = ImageDraw.Draw(img)
    h = img.height
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (img.width, y)], fill=tuple(int(a[i] + (b[i] - a[i]) * t) for i in range(3)))


def _glyph_rows(d: ImageDraw.ImageDraw, rnd: random.Random, x0: int, y0: int, x1: int, y1: int, ink: Color) -> None:
    """Rows of short dark dashes that look like lines of text at thumbnail size."""
    y = y0
    step = max(4, (y1 - y0) // rnd.randint(3, 7))
    while y + 2 < y1:
        x = x0
        end = rnd.randint((x0 + x1) // 2, x1)
        while x < end:
            w = rnd.randint(3, 10)
            d.rectangle([x, y, min(x + w, end), y + max(1, step // 3)], fill=ink)
            x += w + rnd.randint(2, 4)
        y += step


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return _font_cached(max(8, size))


@lru_cache(maxsize=32)
def _font_cached(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# --- benign motifs ----------------------------------------------------------------------
def _scene(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    for _ in range(rnd.randint(3, 9)):
        x, y, r = rnd.randint(0, w), rnd.randint(0, h), rnd.randint(w // 12, w // 3)
        c = (rnd.randint(0, 120), rnd.randint(60, 230), rnd.randint(60, 255))  # blues/greens, no red
        if rnd.random() < 0.5:
            d.ellipse([x - r, y - r, x + r, y + r], fill=c)
        else:
            d.rectangle([x - r, y - r // 2, x + r, y + r // 2], fill=c)


def _landscape(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    horizon = rnd.randint(h // 3, 2 * h // 3)
    d.rectangle([0, horizon, w, h], fill=(rnd.randint(30, 90), rnd.randint(110, 170), rnd.randint(30, 80)))
    r = rnd.randint(w // 14, w // 7)
    sx = rnd.randint(r, w - r)
    d.ellipse([sx - r, horizon // 3 - r, sx + r, horizon // 3 + r], fill=(250, 220, rnd.randint(60, 140)))
    for _ in range(rnd.randint(2, 6)):
        x = rnd.randint(0, w)
        th = rnd.randint(h // 8, h // 3)
        d.polygon([(x, horizon - th), (x - th // 3, horizon + 2), (x + th // 3, horizon + 2)], fill=(20, 90, 40))


def _screenshot(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    d.rectangle([0, 0, w, h // 8], fill=_rgb(rnd, 40, 120))
    _glyph_rows(d, rnd, w // 10, h // 5, w - w // 10, h - h // 10, (30, 30, 30))


def _red_objects(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    """Hard negative for violence: round, clean-edged red fruit on a table."""
    d.rectangle([0, 2 * h // 3, w, h], fill=(150, 110, 70))
    for _ in range(rnd.randint(2, 5)):
        x, y, r = rnd.randint(w // 6, 5 * w // 6), rnd.randint(h // 2, 5 * h // 6), rnd.randint(w // 12, w // 6)
        d.ellipse([x - r, y - r, x + r, y + r], fill=(rnd.randint(190, 240), rnd.randint(10, 50), 30))
        d.line([(x, y - r), (x + 2, y - r - r // 2)], fill=(40, 110, 30), width=2)


def _ticket_card(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    """Hard negative for personal data: a card with a logo and one line, no photo box."""
    m = w // 10
    d.rounded_rectangle([m, h // 4, w - m, 3 * h // 4], radius=6, fill=_rgb(rnd, 150, 250), outline=(60, 60, 60))
    r = h // 10
    d.ellipse([2 * m, h // 2 - r, 2 * m + 2 * r, h // 2 + r], fill=_rgb(rnd, 0, 160))
    _glyph_rows(d, rnd, w // 2, h // 2 - 3, w - 2 * m, h // 2 + 5, (50, 50, 50))


# --- child-safety context (benign alone) ------------------------------------------------
def _school(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    base = 4 * h // 5
    d.rectangle([0, base, w, h], fill=(90, 160, 70))
    x0, x1, top = w // 8, 7 * w // 8, h // 3
    d.rectangle([x0, top, x1, base], fill=(rnd.randint(170, 210), rnd.randint(80, 120), 60))
    d.polygon([(x0 - 4, top), (w // 2, top - h // 6), (x1 + 4, top)], fill=(90, 50, 40))
    cr = h // 18
    d.ellipse([w // 2 - cr, top - h // 10 - cr, w // 2 + cr, top - h // 10 + cr], fill=(250, 250, 250))
    for row in range(2):
        for col in range(4):
            wx = x0 + 6 + col * (x1 - x0 - 12) // 4
            wy = top + 6 + row * (base - top) // 3
            d.rectangle([wx, wy, wx + (x1 - x0) // 10, wy + (base - top) // 6], fill=(200, 230, 250))
    d.line([(x1 - 4, top - h // 4), (x1 - 4, top)], fill=(80, 80, 80), width=2)
    d.rectangle([x1 - 4, top - h // 4, x1 + w // 12, top - h // 4 + h // 14], fill=_rgb(rnd, 0, 255))
    d.rectangle([w // 2 - w // 16, base - h // 6, w // 2 + w // 16, base], fill=(70, 40, 30))


def _playground(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    base = 3 * h // 4
    d.rectangle([0, base, w, h], fill=(225, 200, 140))
    # Swing set: an A-frame with two swings.
    lx, rx, top = w // 10, w // 2, h // 4
    d.line([(lx, base), (lx + 6, top)], fill=(200, 40, 40), width=3)
    d.line([(rx, base), (rx - 6, top)], fill=(200, 40, 40), width=3)
    d.line([(lx + 6, top), (rx - 6, top)], fill=(200, 40, 40), width=3)
    for sx in (lx + (rx - lx) // 3, lx + 2 * (rx - lx) // 3):
        d.line([(sx, top), (sx, base - h // 8)], fill=(60, 60, 60), width=1)
        d.rectangle([sx - 5, base - h // 8, sx + 5, base - h // 8 + 3], fill=_rgb(rnd, 0, 255))
    # Slide: ladder and a sloped chute.
    sx0, sy = 2 * w // 3, h // 3
    d.line([(sx0, base), (sx0, sy)], fill=(40, 80, 200), width=3)
    d.polygon([(sx0, sy), (w - 4, base), (w - 10, base), (sx0, sy + 6)], fill=(250, 200, 0))
    r = w // 14
    d.ellipse([w // 2 - r, base + 4, w // 2 + r, base + 4 + 2 * r], fill=(230, 60, 60))


# --- violence ---------------------------------------------------------------------------
def _splatter_blobs(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    for _ in range(rnd.randint(2, 4)):
        cx, cy, r = rnd.randint(w // 5, 4 * w // 5), rnd.randint(h // 5, 4 * h // 5), rnd.randint(w // 8, w // 4)
        red = (rnd.randint(120, 200), rnd.randint(0, 20), rnd.randint(0, 25))
        n = rnd.randint(9, 16)
        pts = []
        for k in range(n):  # irregular star-like outline: splatter, not a clean circle
            a = 2 * math.pi * k / n
            rr = r * (0.45 + rnd.random() * 0.9)
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=red)
        for _ in range(rnd.randint(5, 14)):
            a, dist, s = rnd.random() * 6.283, r * (1.1 + rnd.random()), rnd.randint(1, 4)
            x, y = cx + dist * math.cos(a), cy + dist * math.sin(a)
            d.ellipse([x - s, y - s, x + s, y + s], fill=red)


def _splatter_streaks(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    for _ in range(rnd.randint(3, 8)):
        x = rnd.randint(0, w)
        y0 = rnd.randint(0, h // 3)
        y1 = rnd.randint(h // 2, h)
        red = (rnd.randint(110, 190), 0, rnd.randint(0, 20))
        d.line([(x, y0), (x + rnd.randint(-6, 6), y1)], fill=red, width=rnd.randint(2, 6))
        d.ellipse([x - 4, y1 - 4, x + 4, y1 + 4], fill=red)
    d.polygon([(w // 3, h // 6), (w // 2, h // 10), (2 * w // 3, h // 5), (w // 2, h // 3)], fill=(140, 0, 10))


def _blade(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    cx, cy = w // 2 + rnd.randint(-w // 8, w // 8), h // 2 + rnd.randint(-h // 8, h // 8)
    a = rnd.random() * math.pi
    length, width = w * (0.55 + rnd.random() * 0.3), w * 0.09

    def at(t: float, o: float) -> tuple[float, float]:
        return (cx + t * math.cos(a) - o * math.sin(a), cy + t * math.sin(a) + o * math.cos(a))

    dark = (rnd.randint(0, 40),) * 3
    d.polygon([at(-length / 2, -width), at(length * 0.2, -width), at(length / 2, 0), at(-length / 2, width * 0.2)],
              fill=(rnd.randint(150, 200),) * 3, outline=dark)  # fmt: skip
    d.polygon([at(-length / 2, -width * 1.6), at(-length / 2 + 4, -width * 1.6), at(-length / 2 + 4, width * 1.6),
               at(-length / 2, width * 1.6)], fill=dark)  # fmt: skip
    d.polygon([at(-length / 2, -width * 0.6), at(-length * 0.85, -width * 0.6), at(-length * 0.85, width * 0.6),
               at(-length / 2, width * 0.6)], fill=dark)  # fmt: skip


def _gun(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    s = 0.6 + rnd.random() * 0.35
    ox, oy = w * (1 - s) / 2 + rnd.randint(-4, 4), h * (1 - s) / 2 + rnd.randint(-4, 4)

    def p(x: float, y: float) -> tuple[float, float]:
        return (ox + x * w * s, oy + y * h * s)

    dark = (rnd.randint(0, 35),) * 3
    d.polygon([p(0.05, 0.25), p(0.95, 0.25), p(0.95, 0.42), p(0.45, 0.42), p(0.42, 0.5), p(0.35, 0.5),
               p(0.35, 0.9), p(0.12, 0.9), p(0.2, 0.45), p(0.05, 0.42)], fill=dark)  # fmt: skip
    d.arc([*p(0.3, 0.38), *p(0.5, 0.62)], 0, 180, fill=dark, width=2)


# --- personal data ----------------------------------------------------------------------
def _id_card(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int, photo_left: bool) -> None:
    m = w // 12
    top, bottom = h // 5, 4 * h // 5
    d.rounded_rectangle([m, top, w - m, bottom], radius=5, fill=_rgb(rnd, 200, 245), outline=(80, 80, 80))
    d.rectangle([m, top, w - m, top + (bottom - top) // 6], fill=_rgb(rnd, 20, 140))
    pw = (w - 2 * m) // 3
    px0 = m + 4 if photo_left else w - m - 4 - pw
    py0, py1 = top + (bottom - top) // 4, bottom - 6
    d.rectangle([px0, py0, px0 + pw, py1], fill=(170, 180, 190))
    fx, fr = px0 + pw // 2, pw // 4
    d.ellipse([fx - fr, py0 + 4, fx + fr, py0 + 4 + 2 * fr], fill=(230, 190, 160))  # head
    d.pieslice([px0 + 2, py1 - pw // 2, px0 + pw - 2, py1 + pw // 2], 180, 360, fill=(60, 70, 110))  # shoulders
    tx0 = px0 + pw + 6 if photo_left else m + 6
    tx1 = w - m - 6 if photo_left else px0 - 6
    _glyph_rows(d, rnd, tx0, py0, tx1, py1, (30, 30, 60))
    d.rectangle([m + 4, bottom - 4, w - m - 4, bottom - 2], fill=(0, 0, 0))  # machine-readable zone


def _id_card_left(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    _id_card(d, rnd, w, h, True)


def _id_card_right(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    _id_card(d, rnd, w, h, False)


def _phone_render(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    digits = f"+{rnd.randint(1, 99)} {rnd.randint(100, 999)} {rnd.randint(100, 999)} {rnd.randint(1000, 9999)}"
    font = _font(w // 9)
    d.rectangle([0, h // 3, w, 2 * h // 3], fill=(255, 255, 255))
    d.text((4, h // 3 + 4), digits[: len(digits) // 2 + 1], fill=(0, 0, 0), font=font)
    d.text((4, h // 2 + 2), digits[len(digits) // 2 + 1 :], fill=(0, 0, 0), font=font)
    d.text((4, 4), "CALL", fill=(200, 0, 0), font=_font(w // 8))


def _address_label(d: ImageDraw.ImageDraw, rnd: random.Random, w: int, h: int) -> None:
    font = _font(w // 11)
    d.rectangle([w // 12, h // 6, w - w // 12, 5 * h // 6], fill=(250, 250, 235), outline=(0, 0, 0))
    y = h // 6 + 4
    for line in (f"{rnd.randint(1, 240)} {rnd.choice(['Elm St', 'Rue Hugo', 'Hauptstr', 'Dluga'])}",
                 f"{rnd.randint(10000, 99999)}", f"Tel {rnd.randint(100, 999)}-{rnd.randint(1000, 9999)}"):  # fmt: skip
        d.text((w // 12 + 4, y), line, fill=(10, 10, 10), font=font)
        y += h // 5


MOTIFS: dict[str, _Draw] = {
    "scene": _scene,
    "landscape": _landscape,
    "screenshot": _screenshot,
    "red_objects": _red_objects,
    "ticket_card": _ticket_card,
    "school": _school,
    "playground": _playground,
    "splatter_blobs": _splatter_blobs,
    "splatter_streaks": _splatter_streaks,
    "blade_silhouette": _blade,
    "gun_silhouette": _gun,
    "id_card_left": _id_card_left,
    "id_card_right": _id_card_right,
    "phone_render": _phone_render,
    "address_label": _address_label,
}
BENIGN_MOTIFS: tuple[str, ...] = ("scene", "landscape", "screenshot", "red_objects", "ticket_card")
MINOR_CONTEXT_MOTIFS: tuple[str, ...] = ("school", "playground")
# policy -> image motifs that violate it on their own (each one is an image family).
IMAGE_FAMILIES: dict[str, tuple[str, ...]] = {
    "violence": ("splatter_blobs", "splatter_streaks", "blade_silhouette", "gun_silhouette"),
    "personal_data": ("id_card_left", "id_card_right", "phone_render", "address_label"),
}


def render(motif: str, rnd: random.Random) -> bytes:
    """Draw one variant of ``motif`` and return it encoded as PNG or JPEG (64-160 px)."""
    w = rnd.choice((64, 96, 112, 128, 128, 128, 160))
    h = max(64, min(160, int(w * rnd.choice((0.75, 1.0, 1.0, 1.25)))))
    img = Image.new("RGB", (w, h))
    bg_hi = 200 if motif in BENIGN_MOTIFS[:2] else 225
    _gradient(img, rnd, _rgb(rnd, 150, 255), _rgb(rnd, 120, bg_hi))
    MOTIFS[motif](ImageDraw.Draw(img), rnd, w, h)
    buf = io.BytesIO()
    if rnd.random() < 0.5:
        img.save(buf, format="PNG", optimize=False)
    else:
        img.save(buf, format="JPEG", quality=rnd.randint(70, 90))
    return buf.getvalue()


@lru_cache(maxsize=4)
def image_pool(seed: int, per_motif: int) -> dict[str, tuple[bytes, ...]]:
    """``per_motif`` encoded variants of every motif, deterministic for ``seed``.

    Cached: tests and the demo generate several lakes with one seed in one process.
    """
    return {
        motif: tuple(render(motif, random.Random(f"{seed}/{motif}/{i}")) for i in range(per_motif)) for motif in MOTIFS
    }
