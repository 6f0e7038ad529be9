"""Typed configuration of an audit job and of a review-sample draw."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipelines import markets as mk
from pipelines.errors import BadConfigError
from pipelines.lake import Lake

BREAKDOWNS: tuple[str, ...] = ("content_type", "language")


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise BadConfigError(f"--{name} must carry a time zone (e.g. 2026-01-31T00:00:00Z), got {value}")


@dataclass(frozen=True)
class AuditConfig:
    """What to audit.

    lake: the lake whose tables are read (never written: reports are files).
    out: output folder (default ``<lake>/reports/audit-<from>-<to>/``).
    start, end: the period, by ``decided_at`` (``end`` exclusive). ``start`` None: from the
        first decision; ``end`` None: up to ``as_of``.
    markets: market codes and/or groups (``EU``, ``EEA``, ``GLOBAL``) to report on (default:
        every market with decisions, and the three groups).
    policies: policy ids to report on (default: every policy with decisions).
    as_of: pin every table at its last version committed at or before this time (default:
        now). The versions are recorded in the report, so the same numbers can be recomputed.
    by: extra breakdowns of the report rows, a subset of ``content_type``, ``language``.
    backlog: backlog table URI, read for the region of dead-lettered items (metadata columns
        only; default ``<lake>/backlog``).
    draws: posterior draws per interval (more draws, steadier interval ends).
    seed: seed of the interval draws (fixed, so the same tables give the same report).
    use_ray: aggregate the hash buckets of the decisions on Ray tasks (None: when the table is
        larger than one local bucket and Ray is running or ``$RAY_ADDRESS`` is set; see
        :mod:`pipelines.audit.buckets`).
    buckets: hash buckets of content_id (None: one per 2 million decision rows, one for a
        table of at most 3 million rows).
    """

    lake: Lake
    out: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    markets: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    as_of: datetime | None = None
    by: tuple[str, ...] = ()
    backlog: str | None = None
    draws: int = 2000
    seed: int = 20260101
    use_ray: bool | None = None
    buckets: int | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        for name in ("start", "end", "as_of"):
            _aware({"start": "from", "end": "to"}.get(name, name.replace("_", "-")), getattr(self, name))
        if self.as_of is not None and self.as_of > self.now:
            # A pin in the future is no pin: commits made until then would change the report.
            raise BadConfigError(f"--as-of ({self.as_of.isoformat()}) is in the future; pin a time that has passed")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise BadConfigError(f"--from ({self.start.isoformat()}) must be before --to ({self.end.isoformat()})")
        unknown = [m for m in self.markets if not mk.is_known(m)]
        if unknown:
            raise BadConfigError(
                f"--market: unknown market or group {', '.join(unknown)} "
                f"(groups: {', '.join(mk.GROUPS)}; markets: {', '.join(mk.ALL_MARKETS)})"
            )
        bad = [b for b in self.by if b not in BREAKDOWNS]
        if bad:
            raise BadConfigError(f"--by: unknown breakdown {', '.join(bad)} (allowed: {', '.join(BREAKDOWNS)})")
        if self.buckets is not None and not 1 <= self.buckets <= 1_000_000:
            raise BadConfigError(f"buckets must be in [1, 1000000], got {self.buckets}")
        if not 100 <= self.draws <= 100_000:
            raise BadConfigError(f"draws must be in [100, 100000], got {self.draws}")

    @property
    def pin_time(self) -> datetime:
        """The time every table is pinned at."""
        return self.as_of or self.now

    @property
    def period_end(self) -> datetime:
        return self.end or self.pin_time

    @property
    def backlog_uri(self) -> str:
        return self.backlog or self.lake.path("backlog")

    def out_dir(self) -> str:
        start = self.start.strftime("%Y%m%dT%H%M%SZ") if self.start else "start"
        end = self.period_end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return self.out or f"{self.lake.reports}/audit-{start}-{end}"


@dataclass(frozen=True)
class SampleConfig:
    """A stratified review-sample draw (``batchjobs review sample``).

    per_stratum: units drawn per stratum (strata with fewer units are taken whole); strata of
        high scores (>= 0.5) and of changed decisions draw ``oversample`` times as many.
    seed: the draw is a deterministic function of the seed and the pinned decisions table.
    oversample: allocation factor of high-score and changed strata.
    as_of: pin the decisions table at this time (default: now).
    policies: restrict the draw to these policy ids (default: all).
    use_ray, buckets: as in :class:`AuditConfig` (the draw is a pass over hash buckets of
        content_id; the merged draw is the same whatever the buckets).
    """

    lake: Lake
    per_stratum: int
    seed: int = 0
    oversample: int = 2
    as_of: datetime | None = None
    policies: tuple[str, ...] = ()
    use_ray: bool | None = None
    buckets: int | None = None

    def __post_init__(self) -> None:
        if self.buckets is not None and not 1 <= self.buckets <= 1_000_000:
            raise BadConfigError(f"buckets must be in [1, 1000000], got {self.buckets}")
        if not 1 <= self.per_stratum <= 1_000_000:
            raise BadConfigError(f"--per-stratum must be in [1, 1000000], got {self.per_stratum}")
        if not 0 <= self.seed < 2**63:
            raise BadConfigError(f"--seed must be in [0, 2**63), got {self.seed}")
        if not 1 <= self.oversample <= 100:
            raise BadConfigError(f"--oversample must be in [1, 100], got {self.oversample}")
        _aware("as-of", self.as_of)
