"""The estimators are honest: 95% intervals cover the true precision and recall in 90-99% of
replicate review samples drawn from one generated population with known truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.audit.accuracy import CELL, estimate_domains
from pipelines.audit.estimators import Cells, estimate, rng_for
from pipelines.audit.sampling import draw
from pipelines.audit.strata import region_group, score_band

POLICIES = {
    # policy: (prevalence, score sharpness, threshold) -> different precision / recall regimes
    "hate": (0.10, 4.0, 0.5),
    "scams": (0.20, 3.0, 0.6),
    "violence": (0.08, 5.0, 0.45),
}
REPLICATES = 200


def _population(n_items: int = 20_000, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    regions = np.array(["DE", "FR", "NO", "US", "BR", "PL"])
    frames = []
    for policy, (prevalence, sharp, threshold) in POLICIES.items():
        y = rng.random(n_items) < prevalence
        # Scores: violating items score high, with overlap (errors in both directions).
        score = np.clip(rng.beta(np.where(y, sharp, 1.0), np.where(y, 1.5, sharp)), 0, 1)
        frames.append(
            pl.DataFrame(
                {
                    "content_id": [f"c{i}" for i in range(n_items)],
                    "policy_id": policy,
                    "region": regions[rng.integers(0, len(regions), n_items)],
                    "score": score,
                    "y": y,
                    "flagged": score >= threshold,
                    "changed": rng.random(n_items) < 0.03,
                }
            )
        )
    pop = pl.concat(frames)
    return pop.with_columns(
        region_group(pl.col("region")).alias("region_group"), score_band(pl.col("score")).alias("score_band")
    )


def _truth(pop: pl.DataFrame) -> dict[str, tuple[float, float]]:
    out = {}
    for policy in POLICIES:
        p = pop.filter(pl.col("policy_id") == policy)
        tp = p.filter(pl.col("flagged") & pl.col("y")).height
        out[policy] = (tp / p.filter(pl.col("flagged")).height, tp / p.filter(pl.col("y")).height)
    return out


@pytest.fixture(scope="module")
def population() -> pl.DataFrame:
    return _population()


def test_intervals_cover_the_truth_in_90_to_99_percent_of_replicates(population: pl.DataFrame) -> None:
    truth = _truth(population)
    counts = population.group_by("policy_id", *CELL).agg(pl.len().alias("m"))
    units = population.select("content_id", "policy_id", "region_group", "score_band", "changed")
    labels = population.select("content_id", "policy_id", "y", "flagged")
    hits = {(p, m): 0 for p in POLICIES for m in ("precision", "recall")}
    widths = {p: [] for p in POLICIES}
    for r in range(REPLICATES):
        sample = draw(units, per_stratum=20, seed=r, oversample=2).join(labels, on=["content_id", "policy_id"])
        est = estimate_domains(counts, sample, ["policy_id"], draws=1000, seed=r)
        for row in est.iter_rows(named=True):
            p = row["policy_id"]
            for i, metric in enumerate(("precision", "recall")):
                hits[(p, metric)] += row[f"{metric}_low"] <= truth[p][i] <= row[f"{metric}_high"]
            widths[p].append(row["recall_high"] - row["recall_low"])
    coverage = {k: v / REPLICATES for k, v in hits.items()}
    for key, c in coverage.items():
        assert 0.90 <= c <= 0.99, f"coverage of {key}: {c:.3f} (truth {truth[key[0]]}); all: {coverage}"
    # Honest but useful: intervals are not trivially [0, 1].
    for p, w in widths.items():
        assert np.median(w) < 0.5, f"{p}: median recall interval width {np.median(w):.2f}"


def test_point_estimate_is_the_weighted_ratio_and_lies_in_its_interval() -> None:
    pop = pl.DataFrame(
        {"region_group": ["EU", "OTHER", "EU", "EU"], "score_band": ["0.9-1.0", "0.9-1.0", "0.3-0.5", "0.0-0.3"],
         "changed": [False] * 4, "flagged": [True, True, False, False], "m": [100, 900, 50, 10_000]}
    )  # fmt: skip
    ys = {0: [True] * 9 + [False], 1: [True] * 5 + [False] * 5, 2: [True] * 2 + [False] * 8, 3: [False] * 10}
    units = pl.concat(
        pop.drop("m")
        .slice(i, 1)
        .select(pl.all().repeat_by(10).explode())
        .with_columns(pl.Series("y", ys[i]), pl.Series("content_id", [f"{i}-{k}" for k in range(10)]))
        for i in range(4)
    )
    out = estimate_domains(
        pop.with_columns(d=pl.lit("x")), units.with_columns(d=pl.lit("x")), ["d"], draws=2000, seed=0
    )
    r = out.row(0, named=True)
    assert r["precision"] == pytest.approx((100 * 0.9 + 900 * 0.5) / 1000)
    assert r["recall"] == pytest.approx(540.0 / (540.0 + 50 * 0.2))
    for metric in ("precision", "recall", "accuracy"):
        assert r[f"{metric}_low"] <= r[metric] <= r[f"{metric}_high"]
    # Kish effective size of the flagged units' weights (10 units of 10, 10 units of 90).
    assert r["precision_n_eff"] == pytest.approx((100 + 900) ** 2 / (10 * 10**2 + 10 * 90**2))
    # Same inputs, same numbers (seeded draws, ordered sums).
    again = estimate_domains(
        pop.with_columns(d=pl.lit("x")), units.with_columns(d=pl.lit("x")), ["d"], draws=2000, seed=0
    )
    assert again.equals(out)


def test_domains_without_labels_are_not_estimated() -> None:
    pop = pl.DataFrame(
        {"d": ["a", "a"], "region_group": ["EU"] * 2, "score_band": ["0.9-1.0"] * 2, "changed": [False] * 2,
         "flagged": [True, False], "m": [10, 5]}
    )  # fmt: skip
    units = pl.DataFrame(
        schema={"d": pl.String, "region_group": pl.String, "score_band": pl.String, "changed": pl.Boolean,
                "flagged": pl.Boolean, "content_id": pl.String, "y": pl.Boolean}
    )  # fmt: skip
    out = estimate_domains(pop, units, ["d"], draws=200, seed=0)
    assert out["precision"].to_list() == [None] and out["recall"].to_list() == [None]


def test_a_cell_without_labels_is_imputed_not_dropped() -> None:
    cells = Cells(
        m=np.array([100, 5000]), n=np.array([10, 0]), x=np.array([8, 0]), q=np.array([0.8, 0.0]),
        n_eff=np.array([10.0, 0.0]), flagged=np.array([True, False]),
    )  # fmt: skip
    out = estimate(cells, draws=2000, rng=rng_for(0, "t"))
    assert out["recall"].imputed and out["recall"].low is not None and out["recall"].low < 0.5
    assert not out["precision"].imputed and out["precision"].value == pytest.approx(0.8)


def test_domains_split_among_tasks_give_the_same_estimates_bit_for_bit(population: pl.DataFrame) -> None:
    """After a pass on Ray the domains are estimated in parts (pipelines.audit.estimate_tasks):
    each part alone, joined and sorted, must equal one call over all domains."""
    from pipelines.audit.estimate_tasks import split

    keys = ["policy_id", "region"]
    pop = population.group_by([*keys, *CELL]).agg(pl.len().alias("m"))
    rng = np.random.default_rng(5)
    units = population.filter(pl.Series(rng.random(population.height) < 0.02))
    # Items that are units both flagged and not in a domain (shown in two markets of a group):
    # their order between the two rows must not depend on the other domains.
    twins = units.head(300).with_columns(~pl.col("flagged"), pl.lit("OTHER").alias("region_group"))
    units = pl.concat([units, twins]).select([*keys, *CELL, "content_id", "y"])
    whole = estimate_domains(pop, units, keys, draws=300, seed=3)
    for parts in (2, 5):
        joined = pl.concat(
            [estimate_domains(p, u, keys, draws=300, seed=3, threads=1) for p, u in split(pop, units, keys, parts)]
        ).sort(keys)
        assert joined.equals(whole), parts
    assert whole.height == pop.select(keys).unique().height


def test_estimates_summarized_together_equal_one_numpy_call_per_metric() -> None:
    """Every domain's medians and interval ends come from one numpy call over all of them
    (estimators.summarize): bit for bit what a call per metric gives, NaN draws and imputed
    cells included."""
    from pipelines.audit.estimators import Draws, summarize

    rng = np.random.default_rng()
    draws = int(rng.integers(101, 3001))
    pending = []
    for i in range(int(rng.integers(5, 40))):
        sample = rng.beta(2.0, 5.0, size=draws)
        if i % 5 == 1:
            sample[rng.integers(0, draws, size=3)] = np.nan  # 0/0 draws (recall with no positive)
        point = [float(sample[0]), float("nan"), float("inf")][i % 3] if i % 4 else float(rng.random())
        pending.append(Draws(sample, point, bool(i % 7 == 3), i, None))
    tail = (1 - 0.95) / 2 * 100
    for d, got in zip(pending, summarize(pending), strict=True):
        nan = bool(np.isnan(d.sample).any())
        value = d.point
        if d.imputed or not np.isfinite(d.point):
            value = float((np.nanmedian if nan else np.median)(d.sample))
        lo, hi = (np.nanpercentile if nan else np.percentile)(d.sample, [tail, 100 - tail])
        assert (got.value, got.low, got.high) == (value, min(float(lo), value), max(float(hi), value))
        assert (got.n, got.imputed) == (d.n, d.imputed)
    assert summarize([]) == []


def test_jobs_started_together_give_each_job_its_own_estimates(population: pl.DataFrame) -> None:
    """The audit starts its region and language estimates as jobs of one call
    (estimate_tasks.start): each job's result is that of estimating it alone."""
    from pipelines.audit.estimate_tasks import start

    rng = np.random.default_rng(7)
    units = population.filter(pl.Series(rng.random(population.height) < 0.03))
    jobs = []
    for keys in (["policy_id", "region"], ["policy_id"]):
        pop = population.group_by([*keys, *CELL]).agg(pl.len().alias("m"))
        jobs.append((pop, units.select([*keys, *CELL, "content_id", "y"]), keys))
    results = start(jobs, draws=300, seed=11, on_ray=False)
    assert len(results) == len(jobs)
    for (pop, u, keys), result in zip(jobs, results, strict=True):
        assert result().equals(estimate_domains(pop, u, keys, draws=300, seed=11))
