"""Self-contained HTML reports with inline SVG charts (audit and sweep reports share it).

No JavaScript, no web fonts, no network: a page is one file that opens in any browser,
prints on paper, and can be archived next to the Parquet figures it shows. Every text
that reaches the page goes through :func:`html.escape`, so values from the lake cannot
inject markup.
"""

from pipelines.report.charts import bar_chart, heatmap, interval_chart
from pipelines.report.page import Section, lineage_block, page, paragraph, table

__all__ = ["Section", "bar_chart", "heatmap", "interval_chart", "lineage_block", "page", "paragraph", "table"]
