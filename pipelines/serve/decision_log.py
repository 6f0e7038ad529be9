"""Micro-batched logging of online decisions: many requests per exactly-once commit.

A Delta commit per request would make thousands of tiny files and commits an hour and
serialise every request behind the lake. Instead each replica buffers decided rows and
commits them when ``max_rows`` have gathered or the oldest has waited ``max_seconds``,
from a background thread, through the backfill's :class:`~pipelines.scoring.commit.ChunkWriter`
(the same exactly-once sink: transaction ``<job>/decisions/<seq>``, rows already in the
table for this model and policy version dropped).

A commit that fails (lake unreachable) keeps its rows and is retried with the same
sequence number, so a retry after a partial failure cannot duplicate them. Rows still
buffered when a replica is killed hard are lost: online logging is at-most-once per crash,
bounded by ``max_rows`` / ``max_seconds``; :meth:`DecisionLog.close` (graceful shutdown)
flushes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogConfig:
    """When to commit a micro-batch.

    max_rows: commit once this many score rows (one per item × policy) are buffered.
    max_seconds: commit once the oldest buffered row has waited this long.
    max_buffered_rows: while commits keep failing, keep at most this many rows (oldest
        dropped, loudly) so a dead lake cannot exhaust the replica's memory.
    """

    max_rows: int = 5000
    max_seconds: float = 5.0
    max_buffered_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_rows <= 10_000_000:
            raise ValueError(f"max_rows must be in [1, 10000000], got {self.max_rows}")
        if not 0.05 <= self.max_seconds <= 3600:
            raise ValueError(f"max_seconds must be in [0.05, 3600], got {self.max_seconds}")
        if self.max_buffered_rows < self.max_rows:
            raise ValueError(f"max_buffered_rows must be >= max_rows ({self.max_rows}), got {self.max_buffered_rows}")


# commit(long_scores, seq): commit one micro-batch exactly once under sequence number seq.
CommitFn = Callable[[pl.DataFrame, int], None]


class DecisionLog:
    """Buffers long score frames and commits them in micro-batches from a daemon thread."""

    def __init__(
        self, commit: CommitFn, config: LogConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ):
        self.config = config or LogConfig()
        self._commit = commit
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._parts: list[pl.DataFrame] = []
        self._rows = 0
        self._oldest: float | None = None
        self._seq = 0
        self._retry: tuple[int, pl.DataFrame] | None = None
        self._retry_at = 0.0
        self._failures = 0
        self.commits = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="decision-log", daemon=True)
        self._thread.start()

    def add(self, long: pl.DataFrame) -> None:
        """Queue scores of one request (never blocks on the lake)."""
        if long.height == 0:
            return
        with self._lock:
            self._parts.append(long)
            self._rows += long.height
            if self._oldest is None:
                self._oldest = self._clock()
            if self._rows > self.config.max_buffered_rows:
                self._drop_oldest()
            full = self._rows >= self.config.max_rows
        if full:
            self._wake.set()

    def _drop_oldest(self) -> None:
        while self._rows > self.config.max_buffered_rows and len(self._parts) > 1:
            gone = self._parts.pop(0)
            self._rows -= gone.height
            self.dropped += gone.height
        log.error("decision log: lake commits keep failing; dropped %d buffered rows so far", self.dropped)

    def due(self) -> bool:
        with self._lock:
            if self._retry is not None:
                return self._clock() >= self._retry_at
            if not self._rows:
                return False
            waited = self._clock() - (self._oldest or self._clock())
            return self._rows >= self.config.max_rows or waited >= self.config.max_seconds

    def flush(self) -> int:
        """Commit what is buffered now; returns rows committed (0 if nothing or on failure).

        A batch whose commit failed is retried on its own, with its own sequence number,
        before anything newer: if the failed attempt did reach the lake, the sink sees the
        transaction and skips it, and newer rows are not merged into a skipped commit.
        """
        with self._lock:
            if self._retry is None and self._parts:
                # A client may send the same item twice within one batch: keep its last scores.
                batch = pl.concat(self._parts, how="vertical_relaxed").unique(["content_id", "policy_id"], keep="last")
                self._retry = (self._seq, batch)
                self._seq += 1
                self._parts, self._rows, self._oldest = [], 0, None
            pending = self._retry
        if pending is None:
            return 0
        seq, batch = pending
        try:
            self._commit(batch, seq)
        except Exception:
            with self._lock:
                self._failures += 1
                self._retry_at = self._clock() + min(60.0, 0.5 * 2**self._failures)
            log.exception("decision log: commit %d of %d rows failed; will retry it", seq, batch.height)
            return 0
        with self._lock:
            self._retry, self._failures = None, 0
            self.commits += 1
        return batch.height

    def _loop(self) -> None:
        tick = min(0.5, self.config.max_seconds / 4)
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self.due():
                self.flush()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread and commit whatever is left (graceful replica shutdown)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        while self._retry is not None or self._parts:
            if not self.flush():
                break
