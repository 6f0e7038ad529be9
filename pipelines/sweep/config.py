"""Typed configuration of a sweep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipelines.errors import BadConfigError
from pipelines.lake import Lake
from pipelines.markets import expand, is_known


@dataclass(frozen=True)
class SweepConfig:
    """A retroactive re-decision of stored scores under a new policy pack.

    lake: the lake whose scores and decisions are swept.
    policy: the new pack (file or bundled name).
    since, until: only content created in [since, until) (UTC).
    markets: only these markets or groups (empty: every market).
    dry_run: plan and count transitions, write nothing.
    chunk_rows: score rows per exactly-once decisions commit, at most (a pass-2 partition holds
        about PASS2_ROWS rows read, so by default it commits once).
    out: report folder (default ``<lake>/reports/sweep-<old>-<new>``).
    use_ray: run the per-bucket passes on Ray tasks (None: when the tables are larger than one
        local bucket and Ray is running or ``$RAY_ADDRESS`` is set; :mod:`pipelines.audit.buckets`).
    buckets: hash buckets of content_id (None: from the tables' row counts).
    """

    lake: Lake
    policy: str
    since: datetime | None = None
    until: datetime | None = None
    markets: tuple[str, ...] = ()
    dry_run: bool = False
    chunk_rows: int = 1_000_000
    out: str | None = None
    use_ray: bool | None = None
    buckets: int | None = None

    def __post_init__(self) -> None:
        if self.buckets is not None and not 1 <= self.buckets <= 1_000_000:
            raise BadConfigError(f"buckets must be in [1, 1000000], got {self.buckets}")
        unknown = [m for m in self.markets if not is_known(m)]
        if unknown:
            raise BadConfigError(
                f"--market {', '.join(unknown)}: unknown market or group (use ISO 3166-1 codes, EU, EEA)"
            )
        if not 1 <= self.chunk_rows <= 10_000_000:
            raise BadConfigError(f"chunk_rows must be in [1, 10000000], got {self.chunk_rows}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise BadConfigError(f"--{name} must carry a time zone, got {value}")
        if self.since and self.until and self.since >= self.until:
            raise BadConfigError(f"--since ({self.since}) must be before --until ({self.until})")

    @property
    def market_codes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for m in self.markets for c in expand(m)))
