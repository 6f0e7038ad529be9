"""Run a backfill: plan from the Delta log, score unit by unit on Ray, verify, move the watermark."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import pyarrow as pa

from pipelines.backfill.config import BackfillConfig
from pipelines.backfill.plan import Plan, make_plan
from pipelines.backfill.progress import record_finished
from pipelines.backfill.worker import HASH_ALL, HASH_EDITS, HASH_NEW, UnitJob, UnitScorer, encode_exceptions
from pipelines.errors import BatchJobsError
from pipelines.lake import Lake, table_exists
from pipelines.model import ModelRef, check_heads, resolve_model
from pipelines.policy import Pack, load_pack, record_pack
from pipelines.scoring.commit import Lineage
from pipelines.tracking import job_run

REDO_PASSES = 2
"""Extra passes over units whose completion marker is missing after the stream ended."""


class BackfillIncompleteError(BatchJobsError):
    """Some planned units were not committed even after redoing them."""


@dataclass(frozen=True)
class BackfillSummary:
    """The figures a backfill prints at the end and logs to its MLflow run."""

    run_id: str
    model: str
    policy_version: str
    source_version: int
    selected: int
    scored: int
    dead_lettered: int
    skipped_done: int  # rows already done or dead-lettered by an earlier run
    redecided: int
    decisions: int
    seconds: float
    device: str
    units: int = 0
    unchanged: int = 0
    edits: int = 0
    plan_lines: tuple[str, ...] = field(default=())
    hashed: int = 0  # images and keyframes hashed into media_hashes
    hash_matches: int = 0  # decision rows from matching the new media against the pack's banks
    files_read: int = 0  # backlog data files the run's units read
    bytes_read: int = 0  # their size (whole files; a unit reads only its row groups)

    @property
    def rows_per_s(self) -> float:
        return (self.scored + self.dead_lettered) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"backfill {self.run_id}: read {self.selected} rows of backlog v{self.source_version} in {self.units} units, "
            f"scored {self.scored}, dead-lettered {self.dead_lettered}, "
            f"skipped {self.skipped_done} already done or dead-lettered before, "
            f"re-decided {self.redecided}, {self.edits} edits re-scored, {self.unchanged} rewritten unchanged, "
            f"{self.hashed} images and keyframes hashed, {self.hash_matches} hash-match decisions; "
            f"{self.rows_per_s:.1f} rows/s on {self.device} (model {self.model}, policy {self.policy_version})"
        )


def cpu_scorers(cpus: float, requested: int | None = None) -> tuple[int, float, int]:
    """(scoring actors, CPUs each reserves, torch threads each) for a CPU-only cluster.

    The actors reserve all the CPUs: a job whose actors cannot start yet because another job
    holds the CPUs then waits for them. For a model of the starter's size processes beat
    intra-op threads (on 2 cores, two 1-thread processes score 1.27x the rows of one 2-thread
    process), so actors are narrow: 1 thread each below 16 CPUs, at most 4 on big nodes (each
    actor holds a copy of the model).
    """
    if requested:
        return requested, cpus / requested, max(1, round(cpus / requested))
    threads = min(4, max(1, int(cpus // 8)))
    scorers = max(1, round(cpus / threads))
    return scorers, cpus / scorers, threads


def _ensure_ray(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        from pipelines.ray_connect import connect

        connect(address)


def _quiet_ray_data() -> None:
    """Ray Data's progress bars and plan dumps go to its log file, not the user's terminal."""
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "enable_operator_progress_bars"):
        ctx.enable_operator_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


class Progress:
    """One line per finished unit (at most every ~2 s), or every ~10 s, on the user's stdout."""

    def __init__(self, units: int, rows: int, out: TextIO) -> None:
        self.units, self.rows, self.out = units, rows, out
        self.done_units = self.done_rows = self.dead = 0
        self.started = self.last = time.monotonic()

    def update(self, summary: dict[str, Any]) -> None:
        self.done_units += 1
        self.done_rows += int(summary["rows"])
        self.dead += int(summary["dead"])
        now = time.monotonic()
        if now - self.last < 2 and self.done_units < self.units and now - self.started > 1:
            return
        self.last = now
        rate = self.done_rows / max(now - self.started, 1e-6)
        left = (self.rows - self.done_rows) / rate if rate > 0 else 0.0
        print(
            f"backfill: {self.done_units}/{self.units} units, {self.done_rows}/{self.rows} rows "
            f"({100 * self.done_rows / max(self.rows, 1):.0f}%), {rate:.1f} rows/s, {self.dead} dead letters, "
            f"ETA {int(left // 60)}m{int(left % 60):02d}s",
            file=self.out,
            flush=True,
        )


def _table_versions(lake: Lake) -> dict[str, int | None]:
    from deltalake import DeltaTable

    out: dict[str, int | None] = {}
    for table in ("scores", "decisions", "dead_letters", "media_hashes"):
        uri = lake.path(table)
        out[table] = DeltaTable(uri).version() if table_exists(uri) else -1
    return out


def _stream(
    config: BackfillConfig, plan: Plan, job: UnitJob, model: ModelRef, units: list[int], on_unit: Callable
) -> None:
    import ray

    exceptions = {int(k[0]): v for k, v in plan.exceptions.partition_by("unit", as_dict=True).items()}
    items = [
        {
            "unit": u,
            "exceptions": encode_exceptions(exceptions[u]) if u in exceptions else b"",
            "hash": _hash_mode(plan, u),
        }
        for u in units
    ]
    gpus = _gpus()
    cpus = float(ray.cluster_resources().get("CPU", 1))
    if gpus:
        scorers, actor_cpus, threads = config.num_scorers or gpus, 1.0, 1
    else:
        scorers, actor_cpus, threads = cpu_scorers(cpus, config.num_scorers)
    scorers = max(1, min(scorers, len(units)))
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 1000)))
    with warnings.catch_warnings():
        # max_restarts as a remote arg warns "deprecated in 2.64"; 2.60-2.63 (our pin) have no named one.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = _map_units(ds, config, job, model, scorers, actor_cpus, threads, gpus)
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        assert isinstance(batch, pa.Table)
        for row in batch.to_pylist():
            on_unit(row)


def _map_units(
    ds: Any,
    config: BackfillConfig,
    job: UnitJob,
    model: ModelRef,
    scorers: int,
    actor_cpus: float,
    threads: int,
    gpus: int,
) -> Any:
    import ray

    return ds.map_batches(
        UnitScorer,
        fn_constructor_kwargs={"job": job, "model": model, "lake_root": config.lake.root, "threads": threads},
        batch_size=1,
        batch_format="numpy",
        # One unit in flight per actor: the first actor up must not take the whole backlog while
        # the others are still loading the model, and a dead actor loses one unit, retried.
        compute=ray.data.ActorPoolStrategy(size=scorers, max_tasks_in_flight_per_actor=1),
        num_cpus=actor_cpus,
        num_gpus=1 if gpus else 0,
        # No actor restarts: Ray Data keeps the actor's constructor in the object store, and Ray
        # logs an error on every run for actors that restart from one. An actor that dies fails
        # this pass instead; the driver then redoes the units without a completion commit.
        max_restarts=0,
    )


def _match_new_media(config: BackfillConfig, pack: Pack, media_before: int | None, run_id: str) -> int:
    """Match the media this run hashed against every bank the pack binds (decisions, source hash_match).

    Banks with no entries are skipped. Only ``media_hashes`` files added by this run are read.
    """
    from pipelines.hashes.banks import list_version, read_banks
    from pipelines.hashes.rematch import RematchConfig, rematch_bank

    written = 0
    for bank in pack.banks:
        if list_version(read_banks(config.lake, bank)) == 0:
            continue
        result = rematch_bank(
            RematchConfig(
                lake=config.lake, bank=bank, policy=config.policy, run_id=run_id, media_after=media_before or -1
            )
        )
        written += sum(b.decisions for b in result.bindings)
        print(f"backfill: {result.line()}", file=sys.stderr)
    return written


def _hash_mode(plan: Plan, unit: int) -> int:
    _, to_score, to_hash = plan.unit_work.get(unit, (0, 0, 0))
    return HASH_ALL if to_hash == to_score else HASH_EDITS if to_hash == 0 else HASH_NEW


def _count(totals: dict[str, int], progress: Progress, row: dict[str, Any]) -> None:
    for k in totals:
        totals[k] += int(row.get(k) or 0)
    progress.update(row)


def _one_line(exc: BaseException) -> str:
    # Ray wraps a worker's exception (RayTaskError -> UserCodeException -> the real one): name the real one.
    while getattr(exc, "cause", None) is not None or exc.__cause__ is not None:
        exc = getattr(exc, "cause", None) or exc.__cause__  # type: ignore[assignment]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


def _missing(lake: Lake, lineage: Lineage, units: list[int]) -> list[int]:
    """Units whose decisions commit (the completion marker) is not in the table."""
    from deltalake import DeltaTable

    if not table_exists(lake.path("decisions")):
        return list(units)
    dt = DeltaTable(lake.path("decisions"))
    return [u for u in units if dt.transaction_version(f"{lineage.job}/decisions/{u}") is None]


def _dry_run(config: BackfillConfig, model: ModelRef, pack: Pack, ray_address: str | None) -> BackfillSummary:
    started = time.monotonic()
    plan = make_plan(
        config,
        model_version=model.version,
        policy_version=pack.policy_version,
        connect=lambda: _ensure_ray(ray_address),
    )
    return BackfillSummary(
        run_id="dry-run",
        model=f"{model.name}/{model.version}",
        policy_version=pack.policy_version,
        source_version=plan.source_version,
        selected=plan.units.rows,
        scored=plan.count("score"),
        dead_lettered=plan.count("dead"),
        skipped_done=plan.count("skip"),
        redecided=plan.count("redecide"),
        decisions=0,
        seconds=time.monotonic() - started,
        device="-",
        units=len(plan.scheduled),
        plan_lines=tuple(plan.lines()),
    )


def run_backfill(
    config: BackfillConfig, *, ray_address: str | None = None, out: TextIO | None = None
) -> BackfillSummary:
    """Score what is new, commit it unit by unit exactly once, and return the summary."""
    started = time.monotonic()
    out = out or sys.stdout
    lake = config.lake
    pack = load_pack(config.policy)
    model = resolve_model(config.model_uri, lake=lake)  # weights load in the scoring actors only
    check_heads(model, [p.head for p in pack.policies], uri=config.model_uri)
    if config.dry_run:
        return _dry_run(config, model, pack, ray_address)
    with job_run(lake, job="backfill", tags={"model": f"{model.name}/{model.version}"}) as run:
        record_pack(lake, pack, run_id=run.run_id)
        versions = _table_versions(lake)
        plan = make_plan(
            config,
            model_version=model.version,
            policy_version=pack.policy_version,
            connect=lambda: _ensure_ray(ray_address),
        )
        lineage = Lineage(
            job=f"backfill-{plan.job}",
            run_id=run.run_id,
            model_name=model.name,
            model_version=model.version,
            source_version=plan.source_version,
            policy_version=pack.policy_version,
            source_uri=plan.source_uri,
        )
        run.log_params({**{k: v for k, v in asdict(config).items() if k != "lake"}, "job": lineage.job})
        for line in plan.lines():
            print(f"backfill: {line}", file=sys.stderr)
        units = plan.scheduled
        totals = {k: 0 for k in ("rows", "scored", "dead", "redecided", "unchanged", "edits", "decisions", "hashed")}
        device = "cpu"
        if units:
            _ensure_ray(ray_address)
            _quiet_ray_data()
            device = "gpu" if _gpus() else "cpu"
            job = UnitJob(
                spec=plan.spec,
                lineage=lineage,
                pack=pack,
                heads=tuple(model.heads),
                cutoff=plan.cutoff,
                batch_rows=config.batch_rows,
                since_versions=versions,
            )
            rows = sum(min(plan.units.chunk_rows, plan.units.rows - u * plan.units.chunk_rows) for u in units)
            progress = Progress(len(units), rows, out)
            todo, failure = units, ""
            for attempt in range(REDO_PASSES + 1):
                try:
                    _stream(config, plan, job, model, todo, lambda row: _count(totals, progress, row))
                except Exception as exc:  # an actor or node lost: the units it held are redone below
                    failure = _one_line(exc)
                    print(f"backfill: pass {attempt + 1} failed ({failure})", file=sys.stderr)
                todo = _missing(lake, lineage, units)
                if not todo:
                    break
                print(f"backfill: {len(todo)} units have no completion commit; redoing them", file=sys.stderr)
            if todo:
                raise BackfillIncompleteError(
                    f"{len(todo)} of {len(units)} units (first: {todo[:5]}) were not committed after "
                    f"{REDO_PASSES + 1} passes (last failure: {failure or 'none reported'}); "
                    "run the same command again (committed units are kept)"
                )
        matched = _match_new_media(config, pack, versions.get("media_hashes"), run.run_id) if totals["hashed"] else 0
        if config.since is None and config.until is None and config.limit is None:
            record_finished(
                lake,
                source=plan.where,
                model_version=model.version,
                policy_version=pack.policy_version,
                job=plan.job,
                from_version=plan.from_version,
                to_version=plan.source_version,
                units=len(units),
                rows=plan.units.rows,
                chunk_rows=config.chunk_rows,
                run_id=run.run_id,
            )
        summary = BackfillSummary(
            run_id=run.run_id,
            model=f"{model.name}/{model.version}",
            policy_version=pack.policy_version,
            source_version=plan.source_version,
            selected=plan.units.rows,
            scored=totals["scored"],
            dead_lettered=totals["dead"],
            skipped_done=plan.count("skip"),
            redecided=totals["redecided"],
            decisions=totals["decisions"],
            seconds=time.monotonic() - started,
            device=device,
            units=len(units),
            unchanged=totals["unchanged"],
            edits=totals["edits"],
            hashed=totals["hashed"],
            hash_matches=matched,
            plan_lines=tuple(plan.lines()),
            files_read=len(read_files := {s.file.path: s.file.size for u in units for s in plan.units.slices(u)}),
            bytes_read=sum(read_files.values()),
        )
        run.log_metrics(
            {
                "rows_selected": summary.selected,
                "rows_scored": summary.scored,
                "rows_dead_lettered": summary.dead_lettered,
                "rows_skipped_done": summary.skipped_done,
                "rows_redecided": summary.redecided,
                "decision_rows": summary.decisions,
                "units": summary.units,
                "rows_per_s": summary.rows_per_s,
            }
        )
    return summary
