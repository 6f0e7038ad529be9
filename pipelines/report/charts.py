"""Inline SVG charts: heat map, grouped bar chart, point-and-interval chart.

The SVG is inline HTML5 (no ``xmlns`` needed), so a page holds no URL at all.

Charts are plain SVG text with ``<title>`` tooltips, fixed palettes that survive greyscale
printing, and no scripts. Missing values (None/NaN) are drawn as hatched grey, never as 0.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence

# Colour-blind-safe qualitative palette (Okabe-Ito).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_FONT = 'font-family="system-ui,Helvetica,Arial,sans-serif"'
_MISSING = "#e0e0e0"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ramp(t: float) -> str:
    """White -> dark blue, monotone in lightness so it reads in greyscale too."""
    t = min(1.0, max(0.0, t))
    lo, hi = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(a + (z - a) * t) for a, z in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _default_fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 10 else f"{v:,.0f}"


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: Sequence[Sequence[float | None]],
    *,
    title: str = "",
    fmt: Callable[[float], str] = _default_fmt,
    vmax: float | None = None,
    cell: int = 44,
) -> str:
    """A rows × cols heat map; ``values[i][j]`` belongs to ``rows[i]``, ``cols[j]``."""
    if len(values) != len(rows) or any(len(r) != len(cols) for r in values):
        raise ValueError(f"heatmap: values must be {len(rows)} rows of {len(cols)} columns")
    finite = [float(v) for r in values for v in r if v is not None and not _missing(v)]
    top = vmax if vmax is not None else (max(finite) if finite else 1.0)
    top = top if top > 0 else 1.0
    left = 8 + 7 * max((len(r) for r in rows), default=1)
    head = 8 + 6 * max((len(c) for c in cols), default=1)
    width, height = left + cell * len(cols) + 10, head + cell * len(rows) + (24 if title else 6)
    out = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" {_FONT}>']
    y0 = 6
    if title:
        out.append(f'<text x="4" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>')
        y0 = 24
    for j, c in enumerate(cols):
        x = left + cell * j + cell / 2
        out.append(
            f'<text x="{x:.1f}" y="{y0 + head - 6}" font-size="10" transform="rotate(-40 {x:.1f} {y0 + head - 6})">'
            f"{_esc(c)}</text>"
        )
    for i, r in enumerate(rows):
        y = y0 + head + cell * i
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" font-size="11" text-anchor="end">{_esc(r)}</text>')
        for j, v in enumerate(values[i]):
            x = left + cell * j
            if _missing(v):
                fill, label, ink = _MISSING, "–", "#555"
            else:
                assert v is not None
                t = float(v) / top
                fill, label, ink = _ramp(t), fmt(float(v)), ("#fff" if t > 0.55 else "#111")
            out.append(
                f"<g><title>{_esc(r)} × {_esc(cols[j])}: {_esc(label)}</title>"
                f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" stroke="#fff"/>'
                f'<text x="{x + cell / 2 - 1:.1f}" y="{y + cell / 2 + 3:.1f}" font-size="9" text-anchor="middle" '
                f'fill="{ink}">{_esc(label)}</text></g>'
            )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    fmt: Callable[[float], str] = _default_fmt,
    bar: int = 12,
    width: int = 640,
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series (with a legend)."""
    names = list(series)
    for name in names:
        if len(series[name]) != len(labels):
            raise ValueError(f"bar_chart: series '{name}' has {len(series[name])} values for {len(labels)} labels")
    finite = [float(v) for s in series.values() for v in s if v is not None and not _missing(v)]
    top = max(finite, default=1.0) or 1.0
    left = 10 + 7 * max((len(x) for x in labels), default=1)
    plot = width - left - 70
    group = bar * max(1, len(names)) + 8
    legend_h = 18 * math.ceil(len(names) / 4) if len(names) > 1 else 0
    y0 = (24 if title else 6) + legend_h
    height = y0 + group * len(labels) + 8
    out = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" {_FONT}>']
    if title:
        out.append(f'<text x="4" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>')
    if len(names) > 1:
        for k, name in enumerate(names):
            lx, ly = 4 + (k % 4) * 150, (24 if title else 6) + 18 * (k // 4)
            out.append(
                f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                f'<text x="{lx + 14}" y="{ly + 9}" font-size="10">{_esc(name)}</text>'
            )
    for i, label in enumerate(labels):
        gy = y0 + group * i
        out.append(
            f'<text x="{left - 6}" y="{gy + group / 2 + 2:.1f}" font-size="11" text-anchor="end">{_esc(label)}</text>'
        )
        for k, name in enumerate(names):
            v = series[name][i]
            y = gy + bar * k
            if _missing(v):
                out.append(f'<text x="{left + 2}" y="{y + bar - 2}" font-size="9" fill="#777">n/a</text>')
                continue
            assert v is not None
            w = max(0.0, float(v)) / top * plot
            out.append(
                f"<g><title>{_esc(label)} / {_esc(name)}: {_esc(fmt(float(v)))}</title>"
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{PALETTE[k % len(PALETTE)]}"/>'
                f'<text x="{left + w + 3:.1f}" y="{y + bar - 3}" font-size="9">{_esc(fmt(float(v)))}</text></g>'
            )
    out.append(f'<line x1="{left}" y1="{y0}" x2="{left}" y2="{height - 6}" stroke="#333"/>')
    out.append("</svg>")
    return "".join(out)


def interval_chart(
    labels: Sequence[str],
    estimates: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str = "",
    lo: float = 0.0,
    hi: float = 1.0,
    width: int = 640,
    row: int = 18,
) -> str:
    """Point estimates with interval whiskers on a fixed [lo, hi] axis (e.g. precision 0..1)."""
    if not len(labels) == len(estimates) == len(lows) == len(highs):
        raise ValueError("interval_chart: labels, estimates, lows and highs must have the same length")
    left = 10 + 7 * max((len(x) for x in labels), default=1)
    plot = width - left - 20
    y0 = 24 if title else 6
    height = y0 + row * len(labels) + 26
    span = (hi - lo) or 1.0

    def sx(v: float) -> float:
        return left + (min(hi, max(lo, v)) - lo) / span * plot

    out = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" {_FONT}>']
    if title:
        out.append(f'<text x="4" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>')
    axis_y = y0 + row * len(labels) + 4
    for k in range(6):
        t = lo + span * k / 5
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{axis_y}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{axis_y + 14}" font-size="9" text-anchor="middle">{t:.1f}</text>'
        )
    for i, label in enumerate(labels):
        cy = y0 + row * i + row / 2
        out.append(f'<text x="{left - 6}" y="{cy + 4:.1f}" font-size="11" text-anchor="end">{_esc(label)}</text>')
        est, a, b = estimates[i], lows[i], highs[i]
        if _missing(est):
            out.append(f'<text x="{left + 2}" y="{cy + 4:.1f}" font-size="9" fill="#777">no labelled sample</text>')
            continue
        assert est is not None
        tip = f"{label}: {est:.3f}"
        if not (_missing(a) or _missing(b)):
            assert a is not None and b is not None
            tip += f" (95% interval {a:.3f}–{b:.3f})"
            out.append(
                f'<line x1="{sx(a):.1f}" y1="{cy:.1f}" x2="{sx(b):.1f}" y2="{cy:.1f}" stroke="#333" stroke-width="2"/>'
            )
        out.append(
            f'<g><title>{_esc(tip)}</title><circle cx="{sx(est):.1f}" cy="{cy:.1f}" r="4" fill="{PALETTE[0]}"/></g>'
        )
    out.append("</svg>")
    return "".join(out)
