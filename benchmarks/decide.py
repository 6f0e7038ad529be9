"""Throughput of pipelines.policy.decide on one core.

Prints progress lines, then ONE JSON line last: score rows/s and decision rows/s of
``decide`` with the default pack, against a baseline measured in the same run (a bare
polars explode + join of the same rows, the floor any implementation pays), and the machine.

    POLARS_MAX_THREADS=1 .venv/bin/python benchmarks/decide.py --rows 1000000

POLARS_MAX_THREADS is set to 1 here unless given, before polars is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import numpy as np
import polars as pl
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script

from pipelines import markets as mk
from pipelines.heads import DEFAULT_HEADS
from pipelines.policy import decide, load_default_pack


def make_scores(rows: int, seed: int = 0) -> pl.DataFrame:
    """``rows`` score rows: items × the 7 default heads, 1 to 3 markets per item."""
    rng = np.random.default_rng(seed)
    heads = np.array(DEFAULT_HEADS)
    items = rows // len(heads) + 1
    countries = np.array(mk.ALL_MARKETS)
    region = countries[rng.integers(0, len(countries), items)]
    n_markets = rng.integers(1, 4, items)
    extra = countries[rng.integers(0, len(countries), (items, 2))]
    markets = [[r, *e[: k - 1]] for r, e, k in zip(region.tolist(), extra.tolist(), n_markets.tolist(), strict=True)]
    per_item = pl.DataFrame(
        {"content_id": [f"c{i:09d}" for i in range(items)], "region": region, "markets": markets},
        schema={"content_id": pl.String, "region": pl.String, "markets": pl.List(pl.String)},
    )
    df = per_item.join(pl.DataFrame({"policy_id": heads}), how="cross").head(rows)
    return df.with_columns(pl.Series("score", rng.random(df.height, dtype=np.float32)))


def _baseline(scores: pl.DataFrame, rules: pl.DataFrame) -> pl.DataFrame:
    return (
        scores.lazy()
        .explode("markets")
        .join(rules.lazy(), left_on=["policy_id", "markets"], right_on=["head", "market"], how="inner")
        .collect()
    )


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeat`` runs.

    CPU time is the steadier figure on a shared machine: with one polars thread it is the
    work done, whatever else the machine is running.
    """
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pack = load_default_pack()
    scores = make_scores(args.rows)
    rules = pl.DataFrame(
        [(p.head, m, p.id) for p in pack.policies for m in mk.ALL_MARKETS],
        schema=["head", "market", "policy"],
        orient="row",
    )
    out = decide(scores, pack)  # warm-up, and the row count
    print(f"decide: {scores.height} score rows -> {out.height} decision rows", flush=True)
    t_decide, cpu_decide = _best(lambda: decide(scores, pack), args.repeat)
    t_base, cpu_base = _best(lambda: _baseline(scores, rules), args.repeat)
    print(
        f"decide {t_decide:.3f} s ({cpu_decide:.3f} s CPU), baseline explode+join {t_base:.3f} s "
        f"({cpu_base:.3f} s CPU), best of {args.repeat}",
        flush=True,
    )
    print(
        json.dumps(
            {
                "benchmark": "decide",
                "score_rows": scores.height,
                "decision_rows": out.height,
                "seconds": round(t_decide, 4),
                "score_rows_per_s": round(scores.height / t_decide),
                "decision_rows_per_s": round(out.height / t_decide),
                "cpu_seconds": round(cpu_decide, 4),
                "score_rows_per_cpu_s": round(scores.height / cpu_decide),
                "baseline_seconds": round(t_base, 4),
                "baseline_cpu_seconds": round(cpu_base, 4),
                "ratio_to_baseline": round(t_decide / t_base, 2),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "polars_max_threads": os.environ["POLARS_MAX_THREADS"],
                "cpu": cpu_name(),
                "python": platform.python_version(),
                "polars": pl.__version__,
                "numpy": np.__version__,
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
