"""Internal complaints (DSA Art. 20): ingest, validation, decisions of record, and a generator."""

from pipelines.complaints.current import AUTOMATED_SOURCES, SOURCE_RANK, current_decisions, effective_rows
from pipelines.complaints.generate import generate_complaints
from pipelines.complaints.ingest import ComplaintsSummary, ingest_complaints, record_action

__all__ = [
    "AUTOMATED_SOURCES",
    "SOURCE_RANK",
    "ComplaintsSummary",
    "current_decisions",
    "effective_rows",
    "generate_complaints",
    "ingest_complaints",
    "record_action",
]
