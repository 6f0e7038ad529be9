"""Run a sweep: diff the new pack against the one behind the current decisions, re-decide the
changed policies from stored scores (no model, no GPU), commit exactly once, and report."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import polars as pl

from pipelines.audit.buckets import ReadSpec, map_reduce, n_buckets_for, pinned_files, runs_on_ray
from pipelines.errors import BadConfigError, BadInputError
from pipelines.lake import table_exists
from pipelines.policy import Pack, load_pack, parse_pack, record_pack
from pipelines.policy.diff import PolicyChange, changed_policies, describe, diff
from pipelines.schema import DECISIONS, SCORES
from pipelines.scoring.keys import job_key
from pipelines.sweep.buckets import BucketJob, BucketResult, behind_bucket, merge_counts, merge_results, sweep_bucket
from pipelines.sweep.config import SweepConfig
from pipelines.sweep.lineage import counts_from_log
from pipelines.sweep.mailbox import RunIdBox, available

# What planning needs of the decisions table (never the wide lineage or hash columns).
_DECISION_COLUMNS = (
    "content_id", "market", "policy_id", "policy_version", "action", "model_name", "model_version", "decided_at",
    "run_id", "source",
)  # fmt: skip
PASS2_ROWS = 1_000_000
"""Decision + score rows of the re-decided policies per pass-2 partition: the partition also
commits them, so it stays smaller than a pass-1 partition (about 1 GiB of worker memory here)."""
ITEM_COLUMNS = ("created_at", "region", "markets", "language", "content_type", "content_sha256")


@dataclass
class SweepPlan:
    """What a sweep will do, before it does it."""

    old_pack: Pack
    new_pack: Pack
    changes: list[PolicyChange]
    policies: tuple[str, ...]  # re-decided; every other policy is not touched
    model_name: str
    model_version: str
    decisions_version: int
    scores_version: int
    score_rows: int
    other_old_versions: tuple[str, ...] = ()
    held_by_record: int = 0

    def describe(self) -> str:
        lines = [
            f"sweep {self.old_pack.policy_version} -> {self.new_pack.policy_version} "
            f"on model {self.model_name}/{self.model_version} "
            f"(scores v{self.scores_version}, decisions v{self.decisions_version})",
        ]
        if self.policies:
            rows = f"{self.score_rows} stored score rows" if self.score_rows else "stored scores"
            lines.append(f"re-decide from {rows}: {', '.join(self.policies)}")
            if self.held_by_record:
                lines.append(
                    f"left as they are: {self.held_by_record} keys whose decision in force is a decision of record "
                    "(human review or appeal)"
                )
        else:
            lines.append("nothing to re-decide: no policy changed in a way that can alter a decision")
        untouched = [p for p in self.new_pack.policy_ids if p not in self.policies]
        if untouched:
            lines.append(f"not touched (unchanged): {', '.join(untouched)}")
        if self.other_old_versions:
            lines.append(f"note: current decisions also come from {', '.join(self.other_old_versions)}")
        return "\n".join(lines)


@dataclass
class SweepResult:
    plan: SweepPlan
    summary: pl.DataFrame
    matrix: pl.DataFrame
    run_id: str | None
    report_dir: str | None
    decisions_written: int
    seconds: float
    lineage: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        total = self.summary.filter(pl.col("scope") == "GLOBAL")
        changed = int(total["changed"].sum()) if total.height else 0
        newly = int(total["newly_restricted"].sum()) if total.height else 0
        restored = int(total["restored"].sum()) if total.height else 0
        owed = int(self.summary.filter(pl.col("scope") == "EEA")["statements_newly_owed"].sum())
        verb = "would change" if self.run_id is None else "changed"
        return (
            f"sweep {self.plan.old_pack.policy_version} -> {self.plan.new_pack.policy_version}: "
            f"{verb} {changed} item decisions (GLOBAL), {newly} newly restricted, {restored} restored, "
            f"{owed} statements of reasons newly owed (EU/EEA); {self.decisions_written} decision rows written "
            f"in {self.seconds:.1f}s"
        )


def _old_pack(config: SweepConfig, counts: pl.DataFrame, new: Pack) -> tuple[Pack, tuple[str, ...]]:
    """The pack behind most current decisions (other than ``new``), and the other versions behind some."""
    versions = (
        counts.filter(pl.col("policy_version") != new.policy_version)
        .group_by("policy_version")
        .agg(pl.col("n").sum())
        .sort("n", "policy_version", descending=[True, False])
    )
    if versions.height == 0:
        raise BadInputError(f"every current decision is already under {new.policy_version}: nothing to sweep")
    behind = str(versions["policy_version"][0])
    uri = config.lake.path("policy_packs")
    rows = pl.read_delta(uri).filter(pl.col("policy_version") == behind) if table_exists(uri) else pl.DataFrame()
    if rows.height == 0:
        raise BadInputError(
            f"pack {behind} behind the current decisions is not in {uri}; was the lake written by batchjobs?"
        )
    old = parse_pack(str(rows["text"][0]), source=f"{uri} ({behind})")
    return old, tuple(str(v) for v in versions["policy_version"][1:].to_list())


def _source_policies(old: Pack, new: Pack, policies: tuple[str, ...], model: str) -> dict[str, str]:
    """For each re-decided policy, the stored policy whose score it reads (same head)."""
    by_head: dict[str, str] = {}
    for p in old.policies:
        if p.head is not None:
            by_head.setdefault(p.head, p.id)
    out: dict[str, str] = {}
    for pid in policies:
        head = new.policy(pid).head
        if head is None:  # decided by hash banks alone: nothing to re-decide from scores
            continue
        if head not in by_head:
            raise BadConfigError(
                f"policy '{pid}' reads head '{head}', which model {model} did not score (it scored "
                f"{', '.join(sorted(by_head))}); train and register a model version with head '{head}', "
                "back-fill with it, then sweep"
            )
        out[pid] = by_head[head]
    return out


def _specs(config: SweepConfig, dv: int, sv: int) -> tuple[ReadSpec, ReadSpec]:
    """The decisions and scores files of the pinned versions, with the columns a sweep reads."""
    lake = config.lake
    options = None  # credentials and endpoint from the environment (AWS_*), as for every reader
    dec_schema, sc_schema = pl.Schema(DECISIONS), pl.Schema(SCORES)
    decisions = ReadSpec(
        pinned_files(lake.path("decisions"), dv), {c: dec_schema[c] for c in _DECISION_COLUMNS}, None, options
    )
    score_cols = ("content_id", "policy_id", "score", "model_name", "source_version", *ITEM_COLUMNS)
    scores = ReadSpec(pinned_files(lake.path("scores"), sv), {c: sc_schema[c] for c in score_cols}, None, options)
    return decisions, scores


def plan_sweep(config: SweepConfig) -> tuple[SweepPlan, ReadSpec, ReadSpec]:
    """Plan the sweep from per-bucket counts of the current decisions.

    Returns the plan and what pass 2 reads: the decisions of the re-decided policies and the
    stored scores of the model behind them (filters, not rows: the rows stay in the buckets).
    """
    from deltalake import DeltaTable

    lake = config.lake
    new = load_pack(config.policy)
    dec_uri, sc_uri = lake.path("decisions"), lake.path("scores")
    if not table_exists(dec_uri) or not table_exists(sc_uri):
        raise BadInputError(f"{lake.root}: no scores/decisions yet; run 'batchjobs backfill' before sweeping")
    dv, sv = DeltaTable(dec_uri).version(), DeltaTable(sc_uri).version()
    decisions, scores = _specs(config, dv, sv)
    # Pass 1: the lineage behind the current decisions; from the log alone when it settles it.
    counts = counts_from_log(dec_uri, dv)
    if counts is None:
        counts = merge_counts(
            list(map_reduce(decisions, behind_bucket, use_ray=config.use_ray, buckets=config.buckets))
        )
    if int(counts["n"].sum() or 0) == 0:
        raise BadInputError(f"{dec_uri}: no decisions yet; run 'batchjobs backfill' before sweeping")
    old, others = _old_pack(config, counts, new)
    # The model behind the current decisions of the old pack is the one whose scores we reuse.
    behind = (
        counts.filter(pl.col("policy_version") == old.policy_version)
        .group_by("model_name", "model_version")
        .agg(pl.col("n").sum())
        .sort("n", "model_name", "model_version", descending=[True, False, False])
    )
    model_name, model_version = str(behind["model_name"][0]), str(behind["model_version"][0])
    changes = diff(old, new)
    policies = tuple(p for p in changed_policies(changes) if p in new.policy_ids)
    sources = _source_policies(old, new, policies, f"{model_name}/{model_version}")

    where = (pl.col("model_version") == model_version) & pl.col("policy_id").is_in(sorted(set(sources.values())))
    if config.since is not None:
        where = where & (pl.col("created_at") >= config.since)
    if config.until is not None:
        where = where & (pl.col("created_at") < config.until)
    scores = replace(scores, where=where)
    # Pass 2 reads the re-decided policies' decisions, without the model name (pass 1's only).
    schema = {c: t for c, t in decisions.schema.items() if c != "model_name"}
    decisions = replace(decisions, schema=schema, where=pl.col("policy_id").is_in(list(policies)))
    plan = SweepPlan(
        old_pack=old,
        new_pack=new,
        changes=changes,
        policies=policies,
        model_name=model_name,
        model_version=model_version,
        decisions_version=dv,
        scores_version=sv,
        score_rows=0,  # counted by pass 2
        other_old_versions=others,
    )
    return plan, decisions, scores


def _pass2(
    config: SweepConfig,
    plan: SweepPlan,
    decisions: ReadSpec,
    scores: ReadSpec,
    run_id: str | None,
    *,
    commit: bool,
    use_ray: bool,
    run_box: RunIdBox | None = None,
) -> Iterator[BucketResult]:
    """Pass 2 over every partition (committing when ``commit``): the partitions' results.

    On Ray the tasks are running when this returns; a committing task takes ``run_id``, or
    waits for ``run_box`` to give it.
    """
    new = plan.new_pack
    job = job_key(
        "sweep", new.policy_version, new.sha256, plan.model_version, plan.scores_version, config.since, config.until,
        config.market_codes, config.chunk_rows, config.buckets, pl.__version__,
    )  # fmt: skip
    bucket_job = BucketJob(
        lake=config.lake,
        old=plan.old_pack,
        new=new,
        policies=plan.policies,
        market_codes=config.market_codes,
        model_version=plan.model_version,
        chunk_rows=config.chunk_rows,
        job=job if commit else None,
        run_id=run_id,
        decisions_version=plan.decisions_version,
        metadata={
            "job": f"sweep-{job}",
            "old_policy_version": plan.old_pack.policy_version,
            "policy_version": new.policy_version,
            "model_version": plan.model_version,
            "scores_version": str(plan.scores_version),
        },
        run_box=run_box,
    )
    if not plan.policies:
        return iter(())
    return map_reduce(
        (decisions, scores),
        sweep_bucket,
        (bucket_job,),
        use_ray=use_ray,
        buckets=_pass2_partitions(config, plan, decisions, scores),
        pass_bucket=True,
    )


def _pass2_partitions(config: SweepConfig, plan: SweepPlan, decisions: ReadSpec, scores: ReadSpec) -> int:
    # Only the re-decided policies' rows are read (the filters): size the partitions by them.
    share = len(plan.policies) / max(1, len(plan.old_pack.policy_ids))
    return config.buckets or n_buckets_for(
        decisions.pinned.total_rows + scores.pinned.total_rows, share=share, bucket_rows=PASS2_ROWS
    )


def _run_id_box(on_ray: bool, plan: SweepPlan) -> RunIdBox | None:
    """A box for the run id when pass 2 runs on Ray (joined or started now) and Ray has a
    key-value store; None: the run is started before pass 2 is submitted."""
    if not on_ray or not plan.policies:
        return None
    from pipelines.ray_connect import connect

    connect(None)
    return RunIdBox() if available() else None


def _merge(plan: SweepPlan, parts: Iterator[BucketResult]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Summary, matrix and rows written over every partition; fills the plan's counts."""
    summ, mat, score_rows, written, held = merge_results(list(parts))
    plan.score_rows = score_rows
    plan.held_by_record = held
    return summ, mat, written


def run_sweep(config: SweepConfig) -> SweepResult:
    """Plan, re-decide per bucket (committing unless dry run), and write the sweep report."""
    from pipelines.tracking import job_run, prewarm

    started = time.monotonic()
    warm = None if config.dry_run else prewarm(config.lake)
    plan, decisions, scores = plan_sweep(config)
    print(plan.describe(), file=sys.stderr)
    on_ray = runs_on_ray((decisions, scores), config.use_ray)
    if config.dry_run:
        summ, mat, _ = _merge(plan, _pass2(config, plan, decisions, scores, None, commit=False, use_ray=on_ray))
        return SweepResult(plan, summ, mat, None, None, 0, time.monotonic() - started)

    lake = config.lake
    new = plan.new_pack
    # On Ray, pass 2 starts now: its tasks read and re-decide while MLflow is imported and the run
    # started here, and wait for the run id only to commit.
    box = _run_id_box(on_ray, plan)
    parts = _pass2(config, plan, decisions, scores, None, commit=True, use_ray=True, run_box=box) if box else None
    try:
        if warm is not None:
            warm.join()
        with job_run(lake, job="sweep", tags={"policy_version": new.policy_version}) as run:
            record_pack(lake, new, run_id=run.run_id)  # before any decision that names it
            if box is not None:
                box.set(run.run_id)
            else:
                parts = _pass2(config, plan, decisions, scores, run.run_id, commit=True, use_ray=on_ray)
            assert parts is not None
            summ, mat, written = _merge(plan, parts)
            from deltalake import DeltaTable

            lineage: dict[str, object] = {
                "run_id": run.run_id,
                "old_policy_version": plan.old_pack.policy_version,
                "new_policy_version": new.policy_version,
                "model": f"{plan.model_name}/{plan.model_version}",
                "scores_version_read": plan.scores_version,
                "decisions_version_read": plan.decisions_version,
                "decisions_version_written": DeltaTable(lake.path("decisions")).version(),
                "keys_held_by_decisions_of_record": plan.held_by_record,
            }
            run.log_metrics({"decision_rows_written": written, "score_rows_read": plan.score_rows})
            out = config.out or f"{lake.reports}/sweep-{plan.old_pack.policy_version}-{new.policy_version}"
            from pipelines.sweep.report import write_report

            write_report(out, plan, summ, mat, lineage, describe(plan.changes, plan.old_pack, new))
    except BaseException:
        if box is not None:
            # Tasks still to reach their commit stop there (no-op if the run id was set). The key
            # stays: a task that has not read it yet must still find the failure.
            box.fail("the driver stopped before the run started")
        raise
    if box is not None:
        box.close()  # every task has returned
    return SweepResult(plan, summ, mat, run.run_id, out, written, time.monotonic() - started, lineage)
