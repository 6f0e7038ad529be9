"""The generator's typed config and summary."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pipelines.errors import BadConfigError

MAX_ROWS = 100_000_000


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not lo <= value <= hi:
        raise BadConfigError(f"{name} must be between {lo:,} and {hi:,}, got {value!r}")


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. Every field is validated at construction (BadConfigError)."""

    rows: int
    """Number of good rows (each gets ground-truth rows); 1 to 100,000,000."""
    seed: int = 0
    """Same seed, same config -> byte-identical rows and the same content ids; 0 to 2**63-1."""
    bad_rows: int = 0
    """Malformed rows added on top of ``rows``, round-robin over BAD_ROW_KINDS; 0 to 1,000,000."""
    enrich: float = 1.0
    """Multiplies every policy's prevalence (each capped at 30%); 1 to 1000."""
    batch_size: int = 5000
    """Rows generated and written per Arrow batch: memory is bounded by one batch; 100 to 100,000."""
    start: datetime = field(default_factory=lambda: datetime(2026, 1, 5, tzinfo=UTC))
    """Earliest created_at (UTC). Fixed by default, not 'now', so output is reproducible."""
    days: int = 300
    """created_at is spread uniformly over this many days after ``start``; 1 to 3650."""
    images_per_motif: int = 128
    """Pre-encoded variants per image motif (~1 ms each, drawn once per seed); 1 to 1000."""
    known: int = 0
    """Known images per default hash bank (known_csam, known_terror); 0 to 10,000. Each adds a bank
    file entry, one near-duplicate backlog row per transform and two look-alikes
    (``pipelines.generate.known_rows``). 0: no known material (and the same output as before)."""

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("rows", 1, MAX_ROWS),
            ("seed", 0, 2**63 - 1),
            ("bad_rows", 0, 1_000_000),
            ("batch_size", 100, 100_000),
            ("days", 1, 3650),
            ("images_per_motif", 1, 1000),
            ("known", 0, 10_000),
        ):
            value = getattr(self, name)
            if not isinstance(value, int):
                raise BadConfigError(f"{name} must be an integer, got {value!r}")
            _check(name, value, lo, hi)
        _check("enrich", self.enrich, 1.0, 1000.0)
        if self.start.tzinfo is None:
            raise BadConfigError("start must be timezone-aware (UTC)")

    def digest(self) -> str:
        """A short hash of the config: names the Delta application transaction of this load."""
        d = asdict(self)
        d["start"] = self.start.isoformat()
        if not self.known:
            del d["known"]  # configs without known material keep the digest they always had
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GenerateSummary:
    """What one generation wrote."""

    rows: int
    """Good rows written to the backlog."""
    bad_rows: int
    """Malformed rows written to the backlog (no ground truth)."""
    bad_row_kinds: dict[str, int]
    """Bad rows per kind."""
    positives: dict[str, int]
    """True labels per ground-truth target (policies and heads)."""
    heldout_rows: int
    """Good rows in the held-out split."""
    backlog_uri: str
    ground_truth_uri: str
    backlog_version: int
    """Delta version of the backlog after the load."""
    seconds: float
    known_rows: int = 0
    """Near-duplicate and look-alike rows of known material (``GenerateConfig.known``), on top of ``rows``."""
    known_banks: dict[str, str] = field(default_factory=dict)
    """Bank id -> bank CSV written for it (``known_banks/<bank>.csv`` in the lake)."""

    def prevalence(self) -> dict[str, float]:
        """Positives per target as a share of good rows."""
        return {k: v / self.rows for k, v in self.positives.items()}
