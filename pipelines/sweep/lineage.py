"""Pass 1 of a sweep from the Delta log alone, when the log settles it.

Pass 1 asks which pack and which model are behind the current decisions. When every data file
of the pinned decisions version holds rows of one lineage (the file's statistics give the same
minimum and maximum policy version, model name and model version, and no nulls) and all files
share that lineage, every current decision is under it, whatever rows are current: the answer
needs no row read. That is the table a backfill leaves (each commit is one run of one model under
one pack) until its first sweep.

Anything else (several lineages, a file without statistics, a string statistic that may be
truncated) returns None, and pass 1 reads the decisions (:func:`pipelines.sweep.buckets.behind_bucket`).
"""

from __future__ import annotations

import polars as pl

LINEAGE: tuple[str, ...] = ("policy_version", "model_name", "model_version")
STRING_PREFIX = 32
"""Delta writers cut string statistics to a prefix of this many characters (a cut maximum gets a
tie-breaker appended, so it never equals the minimum); shorter values are kept whole."""


def counts_from_log(uri: str, version: int) -> pl.DataFrame | None:
    """Rows per lineage (``policy_version``, ``model_name``, ``model_version``, ``n``) when the log
    shows a single lineage across the table's files at ``version``; None otherwise."""
    from deltalake import DeltaTable

    actions = DeltaTable(uri, version=version).get_add_actions(flatten=True)
    names = set(actions.column_names)
    wanted = [f"{s}.{c}" for c in LINEAGE for s in ("min", "max", "null_count")]
    if actions.num_rows == 0 or "num_records" not in names or any(w not in names for w in wanted):
        return None
    rows = [int(n) if isinstance(n, int) else -1 for n in actions.column("num_records").to_pylist()]
    if any(n < 0 for n in rows):
        return None
    stats = {w: actions.column(w).to_pylist() for w in wanted}
    seen: set[tuple[str, ...]] = set()
    for i, n in enumerate(rows):
        if n == 0:
            continue
        lineage = []
        for c in LINEAGE:
            lo, hi, nulls = stats[f"min.{c}"][i], stats[f"max.{c}"][i], stats[f"null_count.{c}"][i]
            if not isinstance(lo, str) or lo != hi or nulls != 0 or len(lo) >= STRING_PREFIX:
                return None
            lineage.append(lo)
        seen.add(tuple(lineage))
        if len(seen) > 1:
            return None
    if not seen:
        return None
    (only,) = seen
    return pl.DataFrame(
        [(*only, sum(rows))],
        schema={**{c: pl.String for c in LINEAGE}, "n": pl.Int64},
        orient="row",
    )
