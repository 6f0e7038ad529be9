"""pipelines.report: self-contained, escaped HTML with inline SVG charts."""

from __future__ import annotations

import math

import pytest

from pipelines.report import Section, bar_chart, heatmap, interval_chart, lineage_block, page, paragraph, table


def test_page_is_self_contained_and_escapes_everything() -> None:
    evil = "<script>alert(1)</script>"
    html = page(
        evil,
        [
            Section(evil, paragraph(evil) + table([evil], [[evil], [None], [1234567], [0.5], [True]])),
            Section("chart", heatmap([evil], ["p"], [[0.5]]) + bar_chart([evil], {"a": [1.0]})),
            Section("ci", interval_chart([evil], [0.5], [0.4], [0.6]) + lineage_block({evil: [evil], "v": {"k": 1}})),
        ],
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html and "src=" not in html
    assert "Content-Security-Policy" in html
    assert "1,234,567" in html and "–" in html


def test_missing_values_are_drawn_as_missing_not_zero() -> None:
    svg = heatmap(["a", "b"], ["x"], [[None], [math.nan]])
    assert svg.count(">–<") == 2
    assert "n/a" in bar_chart(["a"], {"s": [None]})
    assert "no labelled sample" in interval_chart(["a"], [None], [None], [None])


def test_shape_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="heatmap"):
        heatmap(["a"], ["x", "y"], [[1.0]])
    with pytest.raises(ValueError, match="bar_chart"):
        bar_chart(["a", "b"], {"s": [1.0]})
    with pytest.raises(ValueError, match="interval_chart"):
        interval_chart(["a"], [0.1, 0.2], [0.0], [1.0])
