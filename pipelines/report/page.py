"""Page skeleton, tables and the lineage block of a self-contained report."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Print-friendly, system fonts only (no network), wide tables scroll on screen and wrap on paper.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #1b1b1b;padding-bottom:.2em}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #bbb}
h3{font-size:1.05em;margin-top:1.2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top}
th{background:#f0f0f0}
td.l,th.l{text-align:left}
.scroll{overflow-x:auto}
.note{color:#555;font-size:.9em}
.lineage{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8em;background:#f7f7f7;padding:.6em;
border:1px solid #ddd;white-space:pre-wrap;word-break:break-all}
svg{max-width:100%;height:auto}
section{break-inside:avoid-page}
@media print{body{max-width:none;margin:0}.scroll{overflow:visible}h2{break-after:avoid}}
"""


@dataclass(frozen=True)
class Section:
    """One titled part of a page; ``body`` is trusted HTML built by this package's helpers."""

    title: str
    body: str
    level: int = 2


def page(title: str, sections: Sequence[Section], *, subtitle: str | None = None) -> str:
    """A complete HTML document: title, optional subtitle, then each section in order."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Forbid every network fetch and every script: the page must stand alone.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="note">{html.escape(subtitle)}</p>')
    for s in sections:
        level = min(max(s.level, 2), 4)
        parts.append(f"<section><h{level}>{html.escape(s.title)}</h{level}>{s.body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def paragraph(text: str, *, note: bool = False) -> str:
    cls = ' class="note"' if note else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def _cell(value: object) -> tuple[str, bool]:
    """Formatted text of a cell and whether it is left-aligned (text) or right-aligned (number)."""
    if value is None:
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), True
    if isinstance(value, int):
        return f"{value:,}", False
    if isinstance(value, float):
        if value != value:  # NaN
            return "–", False
        return (f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"), False
    return str(value), True


def table(columns: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str | None = None) -> str:
    """An HTML table; numbers right-aligned with thousands separators, None shown as a dash."""
    head = "".join(f'<th class="l">{html.escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for value in row:
            text, left = _cell(value)
            cells.append(f'<td class="l">{html.escape(text)}</td>' if left else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def lineage_block(lineage: Mapping[str, object]) -> str:
    """Key: value lines (lists one item per line) in a monospace block that prints in full."""
    lines = []
    for key, value in lineage.items():
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif isinstance(value, list | tuple):
            lines.append(f"{key}:" + ("" if value else " (none)"))
            lines += [f"  - {v}" for v in value]
        else:
            lines.append(f"{key}: {value}")
    return f'<div class="lineage">{html.escape(chr(10).join(lines))}</div>'
