"""The Annex I templates of Implementing Regulation (EU) 2024/2835, as packaged CSVs, and their expansion.

A report part is its template with the values filled in: the same header, and every
template row in the same order with the same first columns. The only rows added are the
ones the templates mark (Annex II):

- a scope cell ``[...]`` between two language codes (``bg`` ... ``sv``) becomes one row per
  official EU language between them, in the order of the languages' English names (the order
  that puts ``bg`` first and ``sv`` last);
- a scope cell ``[...]`` between two Member State codes (``AT`` ... ``SE``) becomes one row per
  Member State between them, likewise ordered; ``AT, […], SE`` (Part 3) becomes one row per
  Member State. Codes are Eurostat's (Greece is ``EL``);
- Part 8's accuracy, precision and recall rows become one row per automated system (Annex
  II: "separate rows ... per type of content moderation system"), named in their contextual
  information.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

# File stem -> output file name; the order of Annex I.
PARTS: tuple[str, ...] = (
    "Part_1_summary", "Part_2_categories_names", "Part_3_member_states_orders", "Part_4_notices",
    "Part_5_own_initiative_illegal", "Part_6_own_initiative_TC", "Part_7_appeals_and_recidivism",
    "Part_8_automated_means", "Part_9_human_resources", "Part_10_AMAR", "Part_11_qualitative",
)  # fmt: skip
# Official EU languages (ISO 639-1), ordered by English name: Bulgarian ... Swedish.
LANGUAGES: tuple[str, ...] = (
    "bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "ga", "it", "lv", "lt", "mt", "pl",
    "pt", "ro", "sk", "sl", "es", "sv",
)  # fmt: skip
# Member States (Eurostat codes), ordered by English name: Austria ... Sweden.
MEMBER_STATES: tuple[str, ...] = (
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "EL", "HU", "IE", "IT", "LV", "LT", "LU",
    "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
)  # fmt: skip
# Columns that the report fills although they precede the values (not part of a row's identity).
FILLED_FIRST: frozenset[str] = frozenset({"Service", "Reporting period", 'Description of the sub-category "Other"'})
ELLIPSES: tuple[str, ...] = ("[...]", "[…]", "[..]")
ACCURACY_PREFIX = "Accuracy of the automated means"


def _text(stem: str) -> str:
    return resources.files("pipelines.transparency").joinpath(f"templates/{stem}.csv").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Template:
    """One Annex I template: its header and rows exactly as published."""

    stem: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @property
    def value_start(self) -> int:
        """Index of the first value column: the columns before it identify a row."""
        for name in ("Value", "Contextual information"):
            if name in self.header:
                return self.header.index(name)
        # Parts 3-6: the first column after "Scope" / the sub-category description.
        for name in ("Scope", 'Description of the sub-category "Other"'):
            if name in self.header:
                return self.header.index(name) + 1
        raise ValueError(f"{self.stem}: no value column")

    def identity(self, row: Sequence[str]) -> tuple[str, ...]:
        """The cells of ``row`` that name it (first columns, except those the report fills)."""
        return tuple(
            c for name, c in zip(self.header[: self.value_start], row, strict=False) if name not in FILLED_FIRST
        )


def load_template(stem: str) -> Template:
    """The packaged template ``stem`` (a name of :data:`PARTS`)."""
    if stem not in PARTS:
        raise KeyError(f"unknown template {stem!r}; known: {', '.join(PARTS)}")
    rows = list(csv.reader(io.StringIO(_text(stem))))
    return Template(stem=stem, header=tuple(rows[0]), rows=tuple(tuple(r) for r in rows[1:] if any(r)))


@dataclass
class Row:
    """One output row: the template row's cells (values to fill), where it came from and what it stands for.

    index: the template row it expands; scope: the language or Member State it stands for when
    expanded from ``[...]``; system: the automated system of an expanded accuracy row.
    """

    cells: list[str]
    index: int
    scope: str | None = None
    system: str | None = None
    header: tuple[str, ...] = field(default=(), repr=False)

    def get(self, column: str) -> str:
        return self.cells[self.header.index(column)]

    def set(self, column: str, value: object) -> None:
        self.cells[self.header.index(column)] = format_value(value)


def format_value(value: object) -> str:
    """Cell text: '' for None (not applicable), integers as integers, shares and hours without exponent."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise TypeError("booleans have no cell format")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("-0", "") else "0"
    return str(value)


def _ellipsis(cell: str) -> bool:
    return any(e in cell for e in ELLIPSES)


def _between(codes: tuple[str, ...], first: str, last: str) -> tuple[str, ...]:
    i, j = codes.index(first), codes.index(last)
    return codes[i + 1 : j]


def _scope_values(template: Template, i: int, col: int) -> tuple[str, ...]:
    """What the ``[...]`` scope cell of row ``i`` stands for."""
    cell = template.rows[i][col].strip()
    if cell != "[...]" and cell != "[…]" and cell != "[..]":
        # "AT, […], SE": every Member State from the first named to the last.
        first, last = (p.strip() for p in (cell.split(",")[0], cell.split(",")[-1]))
        first, last = ("EL" if first == "GR" else first), ("EL" if last == "GR" else last)
        i0, i1 = MEMBER_STATES.index(first), MEMBER_STATES.index(last)
        return MEMBER_STATES[i0 : i1 + 1]
    before = template.rows[i - 1][col].strip()
    after = template.rows[i + 1][col].strip()
    if before.islower():
        return _between(LANGUAGES, before, after)
    return _between(MEMBER_STATES, before, after)


def expand(template: Template, *, systems: Sequence[str] = ()) -> list[Row]:
    """The output rows of ``template``: every template row, expanded where the template marks it.

    systems: the automated systems that get their own accuracy rows (Part 8); none: one
    row each, as in the template.
    """
    scope_col = template.header.index("Scope") if "Scope" in template.header else None
    ind_col = template.header.index("Indicator") if "Indicator" in template.header else None
    out: list[Row] = []
    for i, cells in enumerate(template.rows):
        scopes: tuple[str | None, ...] = (None,)
        if scope_col is not None and _ellipsis(cells[scope_col]):
            scopes = _scope_values(template, i, scope_col)
        elif scope_col is not None and cells[scope_col].strip() in LANGUAGES + MEMBER_STATES:
            scopes = (cells[scope_col].strip(),)
        per_system = (
            template.stem == "Part_8_automated_means"
            and ind_col is not None
            and cells[ind_col].startswith(ACCURACY_PREFIX)
            and bool(systems)
        )
        for scope in scopes:
            for system in systems if per_system else (None,):
                row = list(cells)
                if scope is not None and scope_col is not None:
                    row[scope_col] = scope
                out.append(Row(cells=row, index=i, scope=scope, system=system, header=template.header))
    return out


def render(template: Template, rows: Sequence[Row]) -> str:
    """RFC 4180 text (CRLF line ends, minimal quoting) of the header and ``rows``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(template.header)
    for row in rows:
        writer.writerow(row.cells)
    return buf.getvalue()
