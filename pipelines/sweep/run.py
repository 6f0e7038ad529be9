"""Run a sweep: diff the new pack against the one behind the current decisions, re-decide the
changed policies from stored scores (no model, no GPU), commit exactly once, and report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace

import polars as pl

from pipelines.errors import BadConfigError, BadInputError
from pipelines.lake import table_exists
from pipelines.policy import Pack, decide, load_pack, parse_pack, record_pack
from pipelines.policy.diff import PolicyChange, changed_policies, describe, diff
from pipelines.scoring.commit import head_rows
from pipelines.scoring.keys import assign_chunks, job_key
from pipelines.sink import SeenKeys, commit_once
from pipelines.sweep.config import SweepConfig
from pipelines.sweep.current import current_decisions
from pipelines.sweep.transitions import item_states, matrix, pairs, summary

# What planning needs of the decisions table (never the wide lineage or hash columns).
_DECISION_COLUMNS = (
    "content_id", "market", "policy_id", "policy_version", "action", "model_name", "model_version", "decided_at",
    "run_id",
)  # fmt: skip
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

    def describe(self) -> str:
        lines = [
            f"sweep {self.old_pack.policy_version} -> {self.new_pack.policy_version} "
            f"on model {self.model_name}/{self.model_version} "
            f"(scores v{self.scores_version}, decisions v{self.decisions_version})",
        ]
        if self.policies:
            lines.append(f"re-decide from {self.score_rows} stored score rows: {', '.join(self.policies)}")
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


def _old_pack(config: SweepConfig, current: pl.DataFrame, new: Pack) -> tuple[Pack, tuple[str, ...]]:
    versions = current.filter(pl.col("policy_version") != new.policy_version)["policy_version"].value_counts(sort=True)
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
        by_head.setdefault(p.head, p.id)
    out: dict[str, str] = {}
    for pid in policies:
        head = new.policy(pid).head
        if head not in by_head:
            raise BadConfigError(
                f"policy '{pid}' reads head '{head}', which model {model} did not score (it scored "
                f"{', '.join(sorted(by_head))}); train and register a model version with head '{head}', "
                "back-fill with it, then sweep"
            )
        out[pid] = by_head[head]
    return out


def plan_sweep(config: SweepConfig) -> tuple[SweepPlan, pl.DataFrame, pl.DataFrame]:
    """Plan the sweep; returns the plan, the current decisions in scope and the score rows to decide."""
    from deltalake import DeltaTable

    lake = config.lake
    new = load_pack(config.policy)
    dec_uri, sc_uri = lake.path("decisions"), lake.path("scores")
    if not table_exists(dec_uri) or not table_exists(sc_uri):
        raise BadInputError(f"{lake.root}: no scores/decisions yet; run 'batchjobs backfill' before sweeping")
    dv, sv = DeltaTable(dec_uri).version(), DeltaTable(sc_uri).version()
    decisions = pl.scan_delta(dec_uri, version=dv).select(_DECISION_COLUMNS)
    current = current_decisions(decisions).collect()
    if current.height == 0:
        raise BadInputError(f"{dec_uri}: no decisions yet; run 'batchjobs backfill' before sweeping")
    old, others = _old_pack(config, current, new)
    # The model behind the current decisions of the old pack is the one whose scores we reuse.
    behind = current.filter(pl.col("policy_version") == old.policy_version)
    mv = behind.group_by("model_name", "model_version").len().sort("len", descending=True).row(0)
    model_name, model_version = str(mv[0]), str(mv[1])
    changes = diff(old, new)
    policies = tuple(p for p in changed_policies(changes) if p in new.policy_ids)
    sources = _source_policies(old, new, policies, f"{model_name}/{model_version}")

    scores = pl.scan_delta(sc_uri, version=sv).filter(
        (pl.col("model_version") == model_version) & pl.col("policy_id").is_in(list(set(sources.values())))
    )
    if config.since is not None:
        scores = scores.filter(pl.col("created_at") >= config.since)
    if config.until is not None:
        scores = scores.filter(pl.col("created_at") < config.until)
    stored = scores.select("content_id", "policy_id", "score", "model_name", "source_version", *ITEM_COLUMNS).collect()
    plan = SweepPlan(
        old_pack=old,
        new_pack=new,
        changes=changes,
        policies=policies,
        model_name=model_name,
        model_version=model_version,
        decisions_version=dv,
        scores_version=sv,
        score_rows=stored.height,
        other_old_versions=others,
    )
    # decide() reads one row per head: the stored rows are per policy of the old pack.
    head_scores = head_rows(stored, old)
    # "Before" is each key's latest row under any other pack version. On a first run no row
    # has the new version yet, so that is the current decision already computed.
    if (current["policy_version"] == new.policy_version).any():
        before = current_decisions(decisions.filter(pl.col("policy_version") != new.policy_version)).collect()
    else:
        before = current
    old_current = before.filter(pl.col("policy_id").is_in(list(policies))).select(
        "content_id", "market", "policy_id", "action"
    )
    return plan, head_scores, old_current


def _decide(plan: SweepPlan, head_scores: pl.DataFrame, config: SweepConfig) -> pl.DataFrame:
    if not plan.policies or head_scores.height == 0:
        return pl.DataFrame()
    restricted = replace(plan.new_pack, policies=tuple(p for p in plan.new_pack.policies if p.id in plan.policies))
    decided = decide(head_scores, restricted)
    if config.market_codes:
        decided = decided.filter(pl.col("market").is_in(list(config.market_codes)))
    return decided


def run_sweep(config: SweepConfig) -> SweepResult:
    """Plan, re-decide, commit (unless dry run) and write the sweep report."""
    from pipelines.tracking import job_run

    started = time.monotonic()
    plan, head_scores, old_current = plan_sweep(config)
    print(plan.describe(), file=sys.stderr)
    decided = _decide(plan, head_scores, config)
    states = item_states(pairs(old_current, decided)) if decided.height else _empty_states()
    summ, mat = summary(states), matrix(states)
    if config.dry_run:
        return SweepResult(plan, summ, mat, None, None, 0, time.monotonic() - started)

    lake = config.lake
    new = plan.new_pack
    with job_run(lake, job="sweep", tags={"policy_version": new.policy_version}) as run:
        record_pack(lake, new, run_id=run.run_id)
        written = _commit(config, plan, decided, run.run_id)
        from deltalake import DeltaTable

        lineage: dict[str, object] = {
            "run_id": run.run_id,
            "old_policy_version": plan.old_pack.policy_version,
            "new_policy_version": new.policy_version,
            "model": f"{plan.model_name}/{plan.model_version}",
            "scores_version_read": plan.scores_version,
            "decisions_version_read": plan.decisions_version,
            "decisions_version_written": DeltaTable(lake.path("decisions")).version(),
        }
        run.log_metrics({"decision_rows_written": written, "score_rows_read": plan.score_rows})
        out = config.out or f"{lake.reports}/sweep-{plan.old_pack.policy_version}-{new.policy_version}"
        from pipelines.sweep.report import write_report

        write_report(out, plan, summ, mat, lineage, describe(plan.changes, plan.old_pack, new))
    return SweepResult(plan, summ, mat, run.run_id, out, written, time.monotonic() - started, lineage)


def _empty_states() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "scope": pl.String,
            "scope_kind": pl.String,
            "content_id": pl.String,
            "policy_id": pl.String,
            "old_action": pl.String,
            "new_action": pl.String,
        }
    )


def _commit(config: SweepConfig, plan: SweepPlan, decided: pl.DataFrame, run_id: str) -> int:
    """Commit the new decisions in deterministic chunks, each exactly once."""
    from datetime import UTC, datetime

    if decided.height == 0:
        return 0
    new = plan.new_pack
    job = job_key(
        "sweep", new.policy_version, new.sha256, plan.model_version, plan.scores_version, config.since, config.until,
        config.market_codes, config.chunk_rows,
    )  # fmt: skip
    n_chunks = max(1, -(-plan.score_rows // config.chunk_rows))
    ids = decided["content_id"].unique().sort()
    chunk_of = pl.DataFrame({"content_id": ids, "chunk_id": assign_chunks(ids, n_chunks)})
    decided = decided.drop("chunk_id", strict=False).join(chunk_of, on="content_id")
    seen = SeenKeys(
        ("content_id", "market", "policy_id"),
        {"policy_version": new.policy_version, "model_version": plan.model_version},
    )
    written = 0
    for (chunk,), part in decided.group_by(["chunk_id"], maintain_order=True):
        rows = part.with_columns(
            pl.lit(run_id).alias("run_id"),
            pl.lit(plan.model_version).alias("model_version"),
            pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias("decided_at"),
        )
        metadata = {
            "job": f"sweep-{job}",
            "run_id": run_id,
            "old_policy_version": plan.old_pack.policy_version,
            "policy_version": new.policy_version,
            "model_version": plan.model_version,
            "scores_version": str(plan.scores_version),
            "chunk": str(chunk),
        }
        commit_once(
            config.lake, "decisions", rows.to_arrow(), app_id=f"sweep-{job}/decisions/{chunk}", metadata=metadata,
            dedup=seen,
        )  # fmt: skip
        written += rows.height
    return written
