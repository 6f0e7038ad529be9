"""Compliance audit: reproducible per-region × policy reports, review samples and DSA statements of reasons."""

from pipelines.audit.config import AuditConfig, SampleConfig
from pipelines.audit.labels import IngestSummary, ingest_labels_csv, ingest_labels_from_ground_truth
from pipelines.audit.run import AuditResult, run_audit
from pipelines.audit.sampling import SampleSummary, sample_for_review

__all__ = [
    "AuditConfig",
    "AuditResult",
    "IngestSummary",
    "SampleConfig",
    "SampleSummary",
    "ingest_labels_csv",
    "ingest_labels_from_ground_truth",
    "run_audit",
    "sample_for_review",
]
