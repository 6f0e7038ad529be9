"""Plan a backfill: which backlog files are new work, cut into units, with key-level checks.

1. Pin the backlog's latest version ``P``. Read the watermark ``W`` of this (backlog, model
   version, pack version) from ``backfill_progress``.
2. The segment's files are the data files added with ``dataChange=true`` in versions ``(W, P]``
   (``(-1, P]`` on a first run), from the log: compaction is skipped, files compacted away after
   they were added are still read where they are, so a run killed before an OPTIMIZE resumes on
   the same rows. Only if a needed log version is gone does the plan scan the whole snapshot at
   ``P``, saying so, with key-level checks alone.
3. Units: ``chunk_rows`` rows each across those files (:mod:`pipelines.backfill.units`).
4. Key-level checks per hash bucket of content ids (:mod:`pipelines.backfill.classify`), as Ray
   tasks when the segment is large, in this process when it is small. The driver keeps the file
   list, the per-unit counts and the exceptions, never a row per backlog row.

The plan is the same for the same command on the same table versions, so a re-run after a crash
names the same units and transactions; rows a crashed run committed are found done by the
key-level checks even when the units differ (another ``--chunk-rows``, a newer version).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.backfill.classify import (
    EXCEPTION_SCHEMA,
    ScanSpec,
    finish,
    order_key_columns,
    scan_bucket,
    split_files,
)
from pipelines.backfill.config import BackfillConfig
from pipelines.backfill.files import LogGoneError, WorkFile, changed_files, snapshot_files, table_schema
from pipelines.backfill.progress import watermark
from pipelines.backfill.units import Units
from pipelines.buckets import file_groups
from pipelines.errors import BadInputError
from pipelines.lake import table_exists
from pipelines.scoring.keys import job_key

BUCKET_ROWS = 1_000_000
"""Rows per planning bucket and per map task's file group: bounds a planning task's memory
(about 150 B a row of metadata)."""
LOCAL_PLAN_ROWS = 200_000
"""Segments up to this many rows are planned in the driver's process (no Ray needed)."""


@dataclass
class Plan:
    """What one backfill run will do.

    units: the segment's units (files and slices; O(files) memory).
    unit_work: unit -> (rows of work, rows to score, rows to score whose media is not hashed yet);
        units without work are not scheduled.
    exceptions: rows that are not plain "score" (see :mod:`pipelines.backfill.classify`).
    counts: rows per status in this run (``out``: outside --since/--until/--limit).
    cutoff: the last row --limit admits (None without --limit or when fewer rows remain).
    """

    source_uri: str
    where: str
    schema: pa.Schema
    from_version: int | None
    source_version: int
    job: str
    full_scan: bool
    note: str | None
    units: Units
    spec: ScanSpec
    unit_work: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    exceptions: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EXCEPTION_SCHEMA))
    counts: dict[str, int] = field(default_factory=dict)
    cutoff: tuple[Any, ...] | None = None

    @property
    def files(self) -> list[WorkFile]:
        return self.units.files

    @property
    def scheduled(self) -> list[int]:
        return sorted(u for u, (work, _, _) in self.unit_work.items() if work > 0)

    def count(self, status: str) -> int:
        return int(self.counts.get(status, 0))

    def exceptions_of(self, unit: int) -> pl.DataFrame:
        return self.exceptions.filter(pl.col("unit") == unit)

    def lines(self) -> list[str]:
        """What --dry-run prints."""
        rng = f"v{self.from_version + 1}..v{self.source_version}" if self.from_version is not None else "all versions"
        if self.from_version is not None and self.from_version >= self.source_version:
            rng = f"nothing after v{self.from_version}"
        lines = [
            f"backlog {self.source_uri} at v{self.source_version}: data files of {rng}: {len(self.files)} files, "
            f"{self.units.rows} rows, {len(self.units)} units of {self.units.chunk_rows} rows",
            f"to score {self.count('score')}, edits to check {self.count('known')}, "
            f"to re-decide {self.count('redecide')}, invalid or duplicate {self.count('dead')}, "
            f"already done {self.count('skip')}, outside --since/--until/--limit {self.count('out')}",
            f"units with work: {len(self.scheduled)} (job {self.job})",
        ]
        if self.note:
            lines.insert(0, self.note)
        return lines


def _segment(uri: str, after: int | None, latest: int) -> tuple[list[WorkFile], bool, str | None]:
    start = after if after is not None else -1
    if start >= latest:
        return [], False, None
    try:
        return changed_files(uri, start, latest), False, None
    except LogGoneError as exc:
        note = (
            f"note: backlog log {exc} is gone (log retention); scanning the whole snapshot v{latest} with "
            "key-level de-duplication instead"
        )
        return snapshot_files(uri, latest), True, note


def _limit_cutoff(keys: list[pl.DataFrame], limit: int) -> tuple[Any, ...] | None:
    frames = [k for k in keys if k.height]
    if not frames:
        return None
    merged = pl.concat(frames, how="vertical_relaxed").sort(order_key_columns(), nulls_last=True)
    if merged.height < limit:
        return None
    return tuple(merged.row(limit - 1))


def _merge(plan: Plan, results: list[dict[str, Any]]) -> None:
    excs = [r["exceptions"] for r in results if r["exceptions"].height]
    plan.exceptions = pl.concat(excs) if excs else pl.DataFrame(schema=EXCEPTION_SCHEMA)
    work: dict[int, tuple[int, int, int]] = {}
    for r in results:
        if r["units"].height:
            for unit, n, s, h in r["units"].iter_rows():
                w0, s0, h0 = work.get(unit, (0, 0, 0))
                work[unit] = (w0 + int(n), s0 + int(s), h0 + int(h))
        for status, n in r["counts"].items():
            plan.counts[status] = plan.counts.get(status, 0) + n
    plan.unit_work = work


def _plan_locally(plan: Plan, n_buckets: int, limit: int | None) -> None:
    parts = split_files(plan.spec, 0, len(plan.spec.files))
    scanned = [scan_bucket(plan.spec, b, limit, parts[b]) for b in range(n_buckets)]
    plan.cutoff = _limit_cutoff([k for _, k in scanned], limit) if limit is not None else None
    _merge(plan, [finish(plan.spec, rows, plan.cutoff) for rows, _ in scanned])


def _plan_on_ray(plan: Plan, n_buckets: int, limit: int | None) -> None:
    import ray

    # Planning tasks reserve no CPU: they run while the job's scoring actors hold the CPUs of a
    # small cluster, and they are short. Their memory is bounded by a bucket.
    spec = ray.put(plan.spec)
    split = ray.remote(num_cpus=0, num_returns=n_buckets, max_retries=3)(split_files)
    scan = ray.remote(num_cpus=0, num_returns=2, max_retries=3)(scan_bucket)
    done = ray.remote(num_cpus=0, max_retries=3)(finish)
    maps: list[Any] = [
        split.remote(spec, lo, hi) for lo, hi in file_groups([f.rows for f in plan.spec.files], BUCKET_ROWS)
    ]
    if n_buckets == 1:  # num_returns=1 gives one ref (to the list of one frame), not a list of refs
        maps = [[m] for m in maps]
    pairs: list[Any] = [scan.remote(spec, b, limit, *[m[b] for m in maps]) for b in range(n_buckets)]
    plan.cutoff = _limit_cutoff(ray.get([k for _, k in pairs]), limit) if limit is not None else None
    _merge(plan, ray.get([done.remote(spec, rows, plan.cutoff) for rows, _ in pairs]))


def make_plan(
    config: BackfillConfig,
    *,
    model_version: str,
    policy_version: str,
    use_ray: bool | None = None,
    connect: Callable[[], None] | None = None,
) -> Plan:
    """Pin the backlog, find this run's files and units, and check them key by key.

    use_ray: plan on Ray tasks (None: when the segment has more than :data:`LOCAL_PLAN_ROWS` rows).
    connect: called before the first Ray task (connects to or starts Ray).
    """
    from deltalake import DeltaTable

    uri = config.backlog_uri
    if not table_exists(uri):
        raise BadInputError(
            f"--backlog {uri}: no Delta table there; run 'batchjobs generate' or point --backlog at yours"
        )
    latest = DeltaTable(uri).version()
    schema = table_schema(uri, latest)
    where = "backlog" if uri == config.lake.path("backlog") else uri
    # --retry-dead-letters looks at every row the log still names, not only the new ones.
    after = (
        None
        if config.retry_dead_letters
        else watermark(config.lake, source=where, model_version=model_version, policy_version=policy_version)
    )
    files, full_scan, note = _segment(uri, after, latest)
    units = Units(files, config.chunk_rows)
    job = job_key(
        "backfill", where, after, latest, model_version, policy_version,
        config.since, config.until, config.limit, config.chunk_rows,
    )  # fmt: skip
    n_buckets = max(1, math.ceil(units.rows / BUCKET_ROWS))
    spec = ScanSpec(
        table_uri=uri,
        where=where,
        schema=schema,
        files=tuple(files),
        chunk_rows=config.chunk_rows,
        lake_root=config.lake.root,
        model_version=model_version,
        policy_version=policy_version,
        since=config.since,
        until=config.until,
        retry_dead_letters=config.retry_dead_letters,
        full_scan=full_scan,
        n_buckets=n_buckets,
    )
    plan = Plan(
        source_uri=uri,
        where=where,
        schema=schema,
        from_version=after,
        source_version=latest,
        job=job,
        full_scan=full_scan,
        note=note,
        units=units,
        spec=spec,
    )
    if units.rows == 0:
        return plan
    if use_ray is None:
        use_ray = units.rows > LOCAL_PLAN_ROWS
    if use_ray and connect is not None:
        connect()
    (_plan_on_ray if use_ray else _plan_locally)(plan, n_buckets, config.limit)
    return plan
