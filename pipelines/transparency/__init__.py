"""The official DSA transparency report: Annex I CSVs of Implementing Regulation (EU) 2024/2835 from the lake."""

from pipelines.transparency.figures import Period
from pipelines.transparency.measures import measures
from pipelines.transparency.report import write_transparency_report
from pipelines.transparency.templates import PARTS, Template, expand, load_template

__all__ = ["PARTS", "Period", "Template", "expand", "load_template", "measures", "write_transparency_report"]
