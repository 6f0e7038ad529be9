"""Run a backfill: plan on the driver, stream rows through Ray Data, commit per chunk."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.backfill.commit import ChunkWriter, Commit, Lineage
from pipelines.backfill.config import BackfillConfig
from pipelines.backfill.plan import Plan, make_plan
from pipelines.backfill.stages import READ_COLUMNS, Preprocess, ReadRows, Score
from pipelines.lake import table_exists
from pipelines.model import ModelRef, check_heads, resolve_model
from pipelines.policy import Pack, load_pack, record_pack
from pipelines.tracking import job_run


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
    skipped_done: int
    skipped_dead: int
    redecided: int
    decisions: int
    seconds: float
    device: str

    @property
    def rows_per_s(self) -> float:
        return (self.scored + self.dead_lettered) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"backfill {self.run_id}: read {self.selected} rows of backlog v{self.source_version}, "
            f"scored {self.scored}, dead-lettered {self.dead_lettered}, "
            f"skipped {self.skipped_done} already done and {self.skipped_dead} dead letters, "
            f"re-decided {self.redecided}; {self.rows_per_s:.1f} rows/s on {self.device} "
            f"(model {self.model}, policy {self.policy_version})"
        )


# Blocks between stages stay small, so a file's rows reach the scorers in many pieces that
# every actor can take as it frees up (Ray Data otherwise merges a map task's output into
# blocks of up to 128 MiB: one block, one task, one busy actor, the others idle).
BLOCK_BYTES = 256 * 1024
PREPROCESS_ROWS = 64


def cpu_scorers(cpus: float, requested: int | None = None) -> tuple[int, float, int]:
    """(scoring actors, CPUs each reserves, torch threads each) for a CPU-only cluster.

    The actors reserve all the CPUs and the light preprocessing tasks none (their number is
    capped instead): a job whose actors cannot start yet because another job holds the CPUs
    then waits for them, rather than holding a CPU its own actors need (a deadlock). For a
    model of the starter's size processes beat intra-op threads (on 2 cores, two 1-thread
    processes score 1.27x the rows of one 2-thread process), so actors are narrow: 1 thread
    each below 16 CPUs, at most 4 on big nodes (each actor holds a copy of the model).
    """
    if requested:
        return requested, cpus / requested, max(1, round(cpus / requested))
    threads = min(4, max(1, int(cpus // 8)))
    scorers = max(1, round(cpus / threads))
    return scorers, cpus / scorers, threads


def _ensure_ray(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        # address None starts a local Ray, or joins RAY_ADDRESS when set (ray job submit).
        ray.init(address=address, include_dashboard=False, log_to_driver=False)


def _gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def _score_with_ray(
    config: BackfillConfig, plan: Plan, lineage: Lineage, pack: Pack, model: ModelRef
) -> dict[str, int]:
    import ray
    from deltalake import DeltaTable

    dt = DeltaTable(plan.source_uri, version=plan.source_version)
    files = dt.file_uris()
    chunk_of_id = dict(zip(plan.to_score["content_id"].to_list(), plan.to_score["chunk_id"].to_list(), strict=True))
    gpus = _gpus()
    cpus = float(ray.cluster_resources().get("CPU", 1))
    cpu_stage: dict[str, Any]
    if gpus:
        scorers = config.num_scorers or gpus
        actor_cpus, threads = 1.0, 1
        cpu_stage = {"num_cpus": 1}  # the CPUs beside the GPUs preprocess
    else:
        scorers, actor_cpus, threads = cpu_scorers(cpus, config.num_scorers)
        cpu_stage = {"num_cpus": 0, "compute": ray.data.TaskPoolStrategy(size=max(1, int(cpus // 4)))}

    # One item per pinned file, read by our own streaming reader: no listing stage, no
    # full-CPU read tasks competing with the scoring actors for the CPUs they reserved.
    ds: ray.data.Dataset = ray.data.from_items([{"path": f} for f in files], override_num_blocks=max(1, len(files)))
    ds.context.target_max_block_size = BLOCK_BYTES  # this dataset only, inherited downstream
    ds = ds.map_batches(ReadRows(chunk_of_id, list(READ_COLUMNS)), batch_size=1, **cpu_stage)
    ds = ds.map_batches(
        Preprocess(model.preprocessor(config.lake)), batch_format="pyarrow", batch_size=PREPROCESS_ROWS, **cpu_stage
    )
    ds = ds.map_batches(
        Score,
        fn_constructor_kwargs={"model": model, "lake_root": config.lake.root, "threads": threads},
        batch_format="pyarrow",
        batch_size=config.batch_rows,
        # At most two batches queued per actor: the first actor up must not take the whole
        # backlog while the others are still loading the model.
        compute=ray.data.ActorPoolStrategy(size=scorers, max_tasks_in_flight_per_actor=2),
        num_cpus=actor_cpus,
        num_gpus=1 if gpus else 0,
        # A scoring actor that dies is restarted and its batch retried: nothing is lost.
        max_restarts=-1,
        max_task_retries=-1,
    )
    ds = ds.map_batches(
        Commit,
        fn_constructor_kwargs={
            "lake_root": config.lake.root,
            "lineage": lineage,
            "pack": pack,
            "heads": tuple(model.heads),
            "expected": plan.expected_rows(),
        },
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=0,
    )
    totals = {"scored": 0, "dead": 0, "decisions": 0, "chunks": 0}
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        assert isinstance(batch, pa.Table)  # batch_format="pyarrow"
        for row in batch.to_pylist():
            totals["scored"] += row["scored"]
            totals["dead"] += row["dead"]
            totals["decisions"] += row["decisions"]
            totals["chunks"] += 1
    return totals


def _redecide(writer: ChunkWriter, config: BackfillConfig, plan: Plan, policy_ids: list[str]) -> tuple[int, int]:
    """Decide rows that have scores but no decisions under this pack, from the stored scores."""
    uri = config.lake.path("scores")
    if plan.to_redecide.height == 0 or not table_exists(uri):
        return 0, 0
    chunk_of = plan.to_redecide.select("content_id", "chunk_id")
    long = (
        pl.scan_delta(uri)
        .filter(
            (pl.col("model_version") == writer.lineage.model_version)
            & pl.col("content_id").is_in(chunk_of["content_id"])
            & pl.col("policy_id").is_in(policy_ids)
        )
        .drop("chunk_id")
        .collect()
        .unique(["content_id", "policy_id"], keep="first")
        .join(chunk_of, on="content_id")
    )
    rows = 0
    for (chunk,), part in long.group_by(["chunk_id"], maintain_order=True):
        rows += writer.decisions(part, int(chunk), kind="-redecide")  # type: ignore[call-overload]
    return plan.to_redecide.height, rows


def run_backfill(config: BackfillConfig, *, ray_address: str | None = None) -> BackfillSummary:
    """Score what the plan says, commit it exactly once, and return the summary."""
    started = time.monotonic()
    lake = config.lake
    pack = load_pack(config.policy)
    model = resolve_model(config.model_uri, lake=lake)  # weights load in the scoring actors only
    check_heads(model, [p.head for p in pack.policies], uri=config.model_uri)
    with job_run(lake, job="backfill", tags={"model": f"{model.name}/{model.version}"}) as run:
        record_pack(lake, pack, run_id=run.run_id)
        plan = make_plan(config, model_version=model.version, policy_version=pack.policy_version)
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
        writer = ChunkWriter(lake, lineage, pack)
        print(
            f"backfill: backlog v{plan.source_version}, {plan.selected} rows selected, "
            f"{plan.to_score.height} to score in {plan.n_chunks} chunks, {plan.to_redecide.height} to re-decide, "
            f"{plan.invalid.height} invalid",
            file=sys.stderr,
        )
        if plan.invalid.height:
            writer.dead_letters(plan.invalid.with_columns(pl.lit("validate").alias("stage")), "invalid")
        redecided, decisions = _redecide(writer, config, plan, [p.id for p in pack.policies])
        totals = {"scored": 0, "dead": 0, "decisions": 0}
        device = "cpu"
        if plan.to_score.height:
            _ensure_ray(ray_address)
            device = "gpu" if _gpus() else "cpu"
            totals = _score_with_ray(config, plan, lineage, pack, model)
        summary = BackfillSummary(
            run_id=run.run_id,
            model=f"{model.name}/{model.version}",
            policy_version=pack.policy_version,
            source_version=plan.source_version,
            selected=plan.selected,
            scored=totals["scored"],
            dead_lettered=totals["dead"] + plan.invalid.height,
            skipped_done=plan.skipped_done,
            skipped_dead=plan.skipped_dead,
            redecided=redecided,
            decisions=totals["decisions"] + decisions,
            seconds=time.monotonic() - started,
            device=device,
        )
        run.log_metrics(
            {
                "rows_selected": summary.selected,
                "rows_scored": summary.scored,
                "rows_dead_lettered": summary.dead_lettered,
                "rows_skipped_done": summary.skipped_done,
                "rows_redecided": summary.redecided,
                "decision_rows": summary.decisions,
                "rows_per_s": summary.rows_per_s,
            }
        )
    return summary
