"""The audit's per-bucket pass and the driver's merge of its partial results.

A bucket holds every decision row of its content ids (:mod:`pipelines.audit.buckets`), so within
it the current decision per key, the "changed" flag per review unit and the distinct items per
group are exact. A bucket returns:

- ``cells``: counts per report cell (:func:`pipelines.audit.aggregate.cells_of`): summed exactly;
- per market × breakdown, a quantile summary of scores and of hours to decision
  (:mod:`pipelines.audit.quantiles`): merged in bucket order, exact while small;
- distinct items per group × breakdown: summed exactly (an item lives in one bucket);
- the current rows of the labelled review units, the restrictive rows the statements of
  reasons need, and the dead-lettered ids that have a decision: small frames, concatenated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from pipelines import markets as mk
from pipelines.audit import aggregate as ag
from pipelines.audit.current import current_decisions
from pipelines.audit.quantiles import Summary
from pipelines.audit.sor import restrictive_rows, write_part
from pipelines.buckets import hash_columns
from pipelines.policy import Pack

QKey = tuple[object, ...]


@dataclass(frozen=True)
class BucketArgs:
    """What every bucket task needs besides its rows (small)."""

    before: datetime
    start: datetime | None
    dims: tuple[str, ...]
    groups: tuple[str, ...]
    unit_ids: pl.Series  # the 64-bit (content_id, policy_id) hashes of the labelled units
    letter_ids: pl.Series  # dead-lettered content ids
    statements: bool = True
    statements_dir: str | None = None
    """Where each partition writes its statements of reasons as a part file (a folder every
    worker reaches); None: the restrictive rows come back to the driver instead."""
    packs: dict[str, tuple[Pack, str]] = field(default_factory=dict)
    """The pack versions the statements quote (only with ``statements_dir``)."""


@dataclass
class Partial:
    cells: list[pl.DataFrame] = field(default_factory=list)
    summaries: dict[QKey, tuple[Summary, Summary]] = field(default_factory=dict)
    items: list[pl.DataFrame] = field(default_factory=list)
    labelled: list[pl.DataFrame] = field(default_factory=list)
    sor_rows: list[pl.DataFrame] = field(default_factory=list)
    decided_letters: list[pl.DataFrame] = field(default_factory=list)
    rows: int = 0
    statement_parts: list[str] = field(default_factory=list)
    statements_written: int = 0
    runs: dict[QKey, list[tuple[Summary, Summary]]] = field(default_factory=dict)
    """Per key, the summaries still to merge into ``summaries`` (:func:`fold` with ``merge=False``)."""


def _hours() -> pl.Expr:
    return (pl.col("decided_at") - pl.col("created_at")).dt.total_seconds(fractional=True) / 3600.0


def audit_bucket(rows: pl.DataFrame, a: BucketArgs) -> Partial:
    """Everything the report needs from one bucket's decision rows (decided before ``a.before``)."""
    out = Partial(rows=rows.height)
    # One chunk per column first: a frame read from Parquet has columns of different chunkings
    # (about 100 chunks for some), and every frame operation on it first re-aligns them all
    # (measured ~0.1 s per operation on 2 M rows, as much as the copy).
    rows = rows.rechunk()
    if a.letter_ids.len():
        out.decided_letters.append(
            rows.filter(pl.col("content_id").is_in(a.letter_ids.implode())).select("content_id").unique()
        )
    # The reader already keeps rows decided in the period: skip the copying filter when so.
    late = rows.height and rows["decided_at"].max() >= a.before  # type: ignore[operator]
    # Superseded rows stay, marked (__live), where keys repeat: each step below leaves them out.
    frame = current_decisions(rows.lazy(), before=a.before if late else None, mark=True)
    del rows
    live = pl.col("__live") if "__live" in frame.columns else None
    if a.start is not None:
        in_period = pl.col("decided_at") >= a.start
        frame = frame.filter(in_period if live is None else live & in_period).drop("__live", strict=False)
        live = None
    dims = list(a.dims)
    out.cells.append(ag.cells_of(frame, dims, live=live))
    # One group-by into lists per market × dims, on a 64-bit hash of the group (cheaper than on the
    # strings, or than partition_by's frame per group): scores and hours for the quantiles, item
    # hashes for the distinct items per group.
    by = [d for d in dims if d != "policy_id"]  # market and policy come hashed (__mp)
    group = pl.col("__mp") ^ hash_columns(by, seed=1100) if by else pl.col("__mp")
    lists = (
        frame.with_columns((group if live is None else pl.when(live).then(group)).alias("__m"))
        .group_by("__m")
        .agg(
            pl.col("market", *dims).first(),
            pl.col("score").alias("s"),  # Float32 as read (pipelines.schema.DECISIONS)
            _hours().alias("h"),
            pl.col("__c").alias("c") if a.groups else pl.len(),
        )
    )
    if live is not None:
        lists = lists.filter(pl.col("__m").is_not_null())  # the superseded rows' group
    keys: list[QKey] = lists.select("market", *dims).rows()
    scores, hours = lists["s"], lists["h"]
    for i, key in enumerate(keys):
        out.summaries[key] = (Summary().add(scores[i].to_numpy()), Summary().add(hours[i].to_numpy()))
    if a.groups:
        schema = {d: lists.schema[d] for d in dims}
        out.items.append(_distinct_items(keys, lists["c"], schema, a.groups))
    labelled = pl.col("__i").is_in(a.unit_ids.implode())
    out.labelled.append(frame.filter(labelled if live is None else labelled & live).drop("__live", strict=False))
    if a.statements:
        restrictive = restrictive_rows(frame.lazy() if live is None else frame.lazy().filter(live)).collect()
        if a.statements_dir is None:
            out.sor_rows.append(restrictive)
        else:
            # Statements are per (item, policy): local to the partition, written by it.
            uri, written = write_part(a.statements_dir, restrictive, a.packs)
            out.statement_parts += [uri] if uri else []
            out.statements_written += written
    return out


def _distinct_items(
    keys: Sequence[QKey], items: pl.Series, schema: dict[str, pl.DataType], groups: Sequence[str]
) -> pl.DataFrame:
    """Distinct items per dims × group (columns: dims, ``region``, ``items``) from the item hashes
    of each market × dims (``keys[i]`` = (market, *dims), ``items[i]`` its list of hashes).

    An item shown in several markets of a group counts once: the hashes of the group's markets
    are sorted together and counted once each (numpy's 64-bit sort; a polars ``n_unique`` per
    group and filter cost about twice as much).
    """
    by_dims: dict[QKey, list[int]] = {}
    for i, key in enumerate(keys):
        by_dims.setdefault(key[1:], []).append(i)
    rows = []
    for d, members_of_d in by_dims.items():
        for g in groups:
            markets = set(mk.GROUPS[g])
            parts = [items[i].to_numpy() for i in members_of_d if keys[i][0] in markets]
            rows.append((*d, g, _count_distinct(parts)))
    return pl.DataFrame(rows, schema={**schema, "region": pl.String, "items": pl.Int64}, orient="row")


def _count_distinct(parts: Sequence[np.ndarray]) -> int:
    values = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)
    return int(values.size and 1 + np.count_nonzero(values[1:] != values[:-1]))


def fold(partials: Iterable[Partial], *, merge: bool = True) -> Partial:
    """Merge bucket partials in the order given (bucket order: the merge is deterministic).

    ``merge=False``: leave the quantile summaries in ``runs`` for :func:`merge_runs`, the costliest
    part of a fold, which the caller may run beside other work.
    """
    acc = Partial()
    runs = acc.runs
    for p in partials:
        acc.rows += p.rows
        acc.cells += p.cells
        for key, (s, h) in p.summaries.items():
            # Copies: a partial fetched from Ray may be a view of the object store's memory,
            # which stays mapped (and counted in this process's RSS) while referenced.
            runs.setdefault(key, []).append((s.copy(), h.copy()))
        acc.items += p.items
        acc.labelled += p.labelled
        acc.sor_rows += p.sor_rows
        acc.decided_letters += p.decided_letters
        acc.statement_parts += p.statement_parts
        acc.statements_written += p.statements_written
        if len(acc.cells) > 16:  # keep the list of frames short while folding
            acc.cells = [_sum_cells(acc.cells)]

    if merge:
        merge_runs(acc)
    # A merged partial is as compact as one partition's (one frame of cells and of items): the
    # partials the driver folds stay the same size whatever the number of partitions.
    if len(acc.cells) > 1:
        acc.cells = [_sum_cells(acc.cells)]
    if len(acc.items) > 1:
        acc.items = [_sum_items(acc.items)]
    return acc


def merge_runs(p: Partial) -> None:
    """Merge each key's summaries in ``p.runs`` into ``p.summaries``, once per key: merging partial
    after partial sorts the growing runs again each time (measured 0.38 s of the driver's
    10^7-row audit). A fold holds at most FAN_IN partials (pipelines.audit.buckets), so the runs
    are bounded too."""

    def merge(parts: list[tuple[Summary, Summary]]) -> tuple[Summary, Summary]:
        return Summary.merged([s for s, _ in parts]), Summary.merged([h for _, h in parts])

    # numpy's sorts release the GIL: as many threads as polars may use here (one in a Ray worker,
    # see pipelines/__init__.py; every core in the driver).
    with ThreadPoolExecutor(max_workers=pl.thread_pool_size()) as pool:
        p.summaries.update(zip(p.runs, pool.map(merge, p.runs.values()), strict=True))
    p.runs = {}


def _sum_items(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(frames, how="vertical_relaxed")
    keys = [c for c in frame.columns if c != "items"]
    return frame.group_by(keys).agg(pl.col("items").sum()).select(frame.columns).sort(keys, nulls_last=True)


def _sum_cells(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Cells summed by their 64-bit key ``__g`` (:func:`pipelines.audit.aggregate.cells_of`): one
    group-by on an integer instead of on a dozen string columns; the other columns are the same
    within a cell. In no particular order (:func:`final_cells` sorts)."""
    frame = pl.concat(frames, how="vertical_relaxed")
    others = [c for c in frame.columns if c not in ("__g", "n")]
    # Same column order as a bucket's cells: folded and fresh cells are concatenated by position.
    return frame.group_by("__g").agg(pl.col(others).first(), pl.col("n").sum()).select(frame.columns)


def final_cells(p: Partial) -> pl.DataFrame:
    """The report's cells: summed, without ``__g``, sorted by every key (a deterministic order)."""
    if not p.cells:
        return pl.DataFrame()
    frame = (_sum_cells(p.cells) if len(p.cells) > 1 else p.cells[0]).drop("__g")
    return frame.sort([c for c in frame.columns if c != "n"], nulls_last=True)


def _q_row(s: Summary, h: Summary) -> dict[str, float | None]:
    row: dict[str, float | None] = dict(
        zip(ag.HOUR_QUANTILES, h.quantiles(list(ag.HOUR_QUANTILES.values())), strict=True)
    )
    for q, v in zip(ag.SCORE_QUANTILES, s.quantiles(ag.SCORE_QUANTILES), strict=True):
        row[f"score_p{round(q * 100)}"] = v
    return row


def aggregates(
    p: Partial, *, dims: Sequence[str], groups: Sequence[str], schema: pl.Schema, cells: pl.DataFrame | None = None
) -> ag.Aggregates:
    """The report's :class:`~pipelines.audit.aggregate.Aggregates` from the merged partials
    (``cells``: :func:`final_cells` of ``p``, when the caller has them)."""
    dims = list(dims)
    cells = final_cells(p) if cells is None else cells
    keys = sorted(p.summaries, key=lambda k: tuple(str(x) for x in k))
    market_rows = [{**dict(zip(["region", *dims], key, strict=True)), **_q_row(*p.summaries[key])} for key in keys]
    group_rows = []
    for g in groups:
        members = set(mk.GROUPS[g])
        by_dims: dict[QKey, list[tuple[Summary, Summary]]] = {}
        for key in keys:
            if key[0] in members:
                by_dims.setdefault(key[1:], []).append(p.summaries[key])
        group_rows += [
            {
                "region": g,
                **dict(zip(dims, d, strict=True)),
                **_q_row(Summary.merged([s for s, _ in parts]), Summary.merged([h for _, h in parts])),
            }
            for d, parts in by_dims.items()
        ]
    base: dict[str, pl.DataType] = {"region": pl.String(), **{d: schema[d] for d in dims}}
    qcols: dict[str, pl.DataType] = {
        c: pl.Float64() for c in [*ag.HOUR_QUANTILES, *(f"score_p{round(q * 100)}" for q in ag.SCORE_QUANTILES)]
    }
    market_q = pl.DataFrame(market_rows, schema={**base, **qcols}, orient="row")
    group_q = pl.DataFrame(group_rows, schema={**base, **qcols}, orient="row")
    if p.items:
        items = pl.concat(p.items, how="vertical_relaxed").group_by("region", *dims).agg(pl.col("items").sum())
        group_q = group_q.join(items, on=["region", *dims], how="left")
    else:
        group_q = group_q.with_columns(pl.lit(None, dtype=pl.Int64).alias("items"))
    return ag.Aggregates(cells=cells, market_q=market_q, group_q=group_q, dims=tuple(dims))
