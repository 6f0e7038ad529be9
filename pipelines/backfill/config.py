"""Typed configuration of a backfill job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipelines.errors import BadConfigError
from pipelines.lake import Lake

DEFAULT_MODEL_URI = "models:/starter@champion"


@dataclass(frozen=True)
class BackfillConfig:
    """What to score and how.

    lake: the lake the job reads and writes.
    backlog: URI of the backlog Delta table (default: ``<lake>/backlog``).
    model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a local model folder.
    policy: a policy pack file or a bundled pack name (``default``).
    since, until: select backlog rows by ``created_at`` (UTC; ``until`` exclusive).
    limit: at most this many rows of this run's new work, in (table version, created_at,
        content_id) order.
    chunk_rows: rows per unit, the exactly-once commit; smaller units lose less work to a crash
        but make more commits (see docs/architecture.md, "Compaction").
    batch_rows: rows per scoring call (the model packs them by length inside).
    retry_dead_letters: score again rows that an earlier run dead-lettered.
    num_scorers: scoring actors (default: one per GPU, else see :func:`pipelines.backfill.run.cpu_scorers`).
    dry_run: plan and report what a run would do; write nothing.
    """

    lake: Lake
    backlog: str | None = None
    model_uri: str = DEFAULT_MODEL_URI
    policy: str = "default"
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    chunk_rows: int = 2000
    batch_rows: int = 256
    retry_dead_letters: bool = False
    num_scorers: int | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise BadConfigError(f"--limit must be >= 1, got {self.limit}")
        if not 1 <= self.chunk_rows <= 1_000_000:
            raise BadConfigError(f"--chunk-rows must be in [1, 1000000], got {self.chunk_rows}")
        if not 1 <= self.batch_rows <= 65_536:
            raise BadConfigError(f"batch_rows must be in [1, 65536], got {self.batch_rows}")
        if self.num_scorers is not None and self.num_scorers < 1:
            raise BadConfigError(f"num_scorers must be >= 1, got {self.num_scorers}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise BadConfigError(f"--{name} must carry a time zone (e.g. 2026-01-31T00:00:00Z), got {value}")
        if self.since and self.until and self.since >= self.until:
            raise BadConfigError(f"--since ({self.since}) must be before --until ({self.until})")

    @property
    def backlog_uri(self) -> str:
        return self.backlog or self.lake.path("backlog")
