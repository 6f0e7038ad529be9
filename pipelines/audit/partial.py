"""The audit's per-bucket pass and the driver's merge of its partial results.

A bucket holds every decision row of its content ids (:mod:`pipelines.audit.buckets`), so within
it the current decision per key, the "changed" flag per review unit and the distinct items per
group are exact. A bucket returns:

- ``counts`` and ``lineage``: its report cells (:func:`pipelines.audit.aggregate.cells_of`) summed
  into what the report reads of them (:func:`pipelines.audit.aggregate.tallies`): summed exactly;
- per market × breakdown, a quantile summary of scores and of hours to decision
  (:mod:`pipelines.audit.quantiles`): merged in bucket order, exact while small;
- distinct items per group × breakdown: summed exactly (an item lives in one bucket);
- the current rows of the labelled review units, the restrictive rows the statements of
  reasons need, and the dead-lettered ids that have a decision: small frames, concatenated.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from pipelines import markets as mk
from pipelines.audit import aggregate as ag
from pipelines.audit.current import current_marks
from pipelines.audit.quantiles import Packed, Summary, pack, unpack
from pipelines.audit.sor import SOR_COLUMNS, restrictive, write_part
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
    counts: list[pl.DataFrame] = field(default_factory=list)
    """Current decisions per market × dims × action, automation and source."""
    lineage: list[pl.DataFrame] = field(default_factory=list)
    """Current decisions per market × dims × policy version, model and run id."""
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
    populations: list[pl.DataFrame] = field(default_factory=list)
    """The estimators' population counts per market (:func:`pipelines.audit.aggregate.populations`)."""
    language_populations: list[pl.DataFrame] = field(default_factory=list)
    """The same per language."""

    def __getstate__(self) -> dict[str, object]:
        # Shipped (from a Ray task) with its summaries packed (see quantiles.Packed) and its
        # frames as Arrow IPC streams.
        state = dict(self.__dict__)
        pairs = list(self.summaries.values())
        state["summaries"] = (list(self.summaries), pack([s for s, _ in pairs]), pack([h for _, h in pairs]))
        for name in _FRAMES:
            state[name] = [_ipc(f) for f in state[name]]  # type: ignore[attr-defined]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        packed: tuple[list[QKey], Packed, Packed] = state["summaries"]  # type: ignore[assignment]
        keys, scores, hours = packed
        state["summaries"] = dict(zip(keys, zip(unpack(scores), unpack(hours), strict=True), strict=True))
        for name in _FRAMES:
            state[name] = [pl.read_ipc(b) for b in state[name]]  # type: ignore[attr-defined]
        self.__dict__.update(state)


_FRAMES = (
    "counts",
    "lineage",
    "items",
    "labelled",
    "sor_rows",
    "decided_letters",
    "populations",
    "language_populations",
)
"""The fields of :class:`Partial` that hold lists of frames."""


def _ipc(frame: pl.DataFrame) -> bytes:
    """``frame`` as an Arrow IPC stream with plain strings (compat level oldest): 50 k rows of a
    dozen short strings serialize in 9 ms and 9.7 MB this way, against 24 ms and 12 MB as pickled
    polars frames (string views), and read back in 11 ms against 17."""
    buf = io.BytesIO()
    frame.write_ipc(buf, compat_level=pl.CompatLevel.oldest())
    return buf.getvalue()


def _hours() -> pl.Expr:
    """Hours from creation to decision, as float32 (like the scores): 6-7 significant digits (a
    step under 30 s at 10^5 hours, eleven years), and half the bytes to sort, ship and merge (a
    2 M-row partition's exact runs of scores and hours: 16 MB instead of 24)."""
    hours = (pl.col("decided_at") - pl.col("created_at")).dt.total_seconds(fractional=True) / 3600.0
    return hours.cast(pl.Float32)


def audit_bucket(rows: pl.DataFrame, a: BucketArgs, *, constants: Sequence[frozenset[str]] = ()) -> Partial:
    """Everything the report needs from one bucket's decision rows (decided before ``a.before``).

    ``constants``: (one table) the columns that hold one value in every row, by the tables'
    statistics (:func:`pipelines.audit.buckets.constant_columns`): left out of the cells' key."""
    out = Partial(rows=rows.height)
    if a.letter_ids.len():
        ids = rows.select("content_id")
        out.decided_letters.append(ids.filter(pl.col("content_id").is_in(a.letter_ids.implode())).unique())
    # The reader already keeps rows decided in the period: skip the copying filter when so.
    if rows.height and rows["decided_at"].max() >= a.before:  # type: ignore[operator]
        rows = rows.filter(pl.col("decided_at") < a.before)
    # The rows stay as read, one chunk per file (see current_marks), unless a filter split some
    # columns into many small chunks: every step would then re-align them, so one copy first.
    if len({tuple(rows[c].chunk_lengths()) for c in rows.columns}) > 1:
        rows = rows.rechunk()
    # Superseded rows stay, marked in ``live``, where keys repeat: each step below leaves them out.
    rows, marks = current_marks(rows)
    live = marks["__live"] if "__live" in marks.columns else None
    if a.start is not None:
        in_period = rows["decided_at"] >= a.start
        live = in_period if live is None else live & in_period
    dims = list(a.dims)
    cells = ag.cells_of(rows, marks, dims, live=live, constant=constants[0] if constants else frozenset())
    counts, lineage = ag.tallies(cells, dims)
    by_market, by_language = ag.populations(cells, dims)
    del cells  # only its sums leave the partition
    out.counts.append(counts)
    out.lineage.append(lineage)
    out.populations.append(by_market)
    out.language_populations.append(by_language)
    # One group-by into lists per market × dims, on a 64-bit hash of the group (cheaper than on the
    # strings, or than partition_by's frame per group): scores and hours for the quantiles, item
    # hashes for the distinct items per group. Each group is named by its first row.
    by = [d for d in dims if d != "policy_id"]  # market and policy come hashed (__mp)
    group = marks["__mp"] ^ rows.select(hash_columns(by, seed=1100)).to_series() if by else marks["__mp"]
    values = [rows["score"].alias("s"), rows.select(_hours().alias("h")).to_series()]
    values += [marks["__c"].alias("c")] if a.groups else []
    frame = pl.DataFrame([group.alias("__m"), *values]).rechunk().with_row_index("__row")
    if live is not None:
        frame = frame.filter(live)  # the current decisions in the period only
    lists = frame.group_by("__m").agg(pl.first("__row"), *(pl.col(v.name) for v in values))
    names = rows.select("market", *dims).gather(lists["__row"])
    keys: list[QKey] = names.rows()
    scores, hours = sorted_runs(lists["s"]), sorted_runs(lists["h"])
    for key, s, h in zip(keys, scores, hours, strict=True):
        out.summaries[key] = (Summary.of_sorted(s), Summary.of_sorted(h))
    if a.groups:
        out.items.append(_distinct_items(keys, lists["c"], {d: names.schema[d] for d in dims}, a.groups))
    labelled = marks["__i"].is_in(a.unit_ids.implode())
    out.labelled.append(_rows_where(rows, marks, labelled if live is None else labelled & live))
    if a.statements:
        owed = rows.select(restrictive()).to_series()
        statement_rows = _rows_where(rows.select(SOR_COLUMNS), None, owed if live is None else owed & live)
        if a.statements_dir is None:
            out.sor_rows.append(statement_rows)
        else:
            # Statements are per (item, policy): local to the partition, written by it.
            uri, written = write_part(a.statements_dir, statement_rows, a.packs)
            out.statement_parts += [uri] if uri else []
            out.statements_written += written
    return out


def _lists(lists: pl.Series) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The values of a list column as one flat numpy array (nulls as NaN, possibly a read-only
    view of polars' memory) and the bounds of each list in it: one array, instead of a Series and
    an array per list (hundreds per partition)."""
    arrow = lists.rechunk().to_arrow()
    bounds = arrow.offsets.to_numpy()
    flat = arrow.values.to_numpy(zero_copy_only=False)
    return flat, list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def sorted_runs(lists: pl.Series) -> list[np.ndarray]:
    """Each list of the float list column ``lists`` sorted, without NaN or nulls, as views of one
    buffer: one copy of the values, each list sorted in place (a 2 M-row partition's scores and
    hours: 0.021 s, against 0.026 for an array, a NaN filter and a sorted copy per list)."""
    flat, bounds = _lists(lists)
    values = flat.astype(flat.dtype if flat.dtype == np.float32 else np.float64, copy=True)
    runs = []
    for lo, hi in bounds:
        run = values[lo:hi]
        run.sort()  # NaN sorts last
        runs.append(run[: np.searchsorted(run, np.nan)] if run.size and np.isnan(run[-1]) else run)
    return runs


def _rows_where(rows: pl.DataFrame, marks: pl.DataFrame | None, where: pl.Series) -> pl.DataFrame:
    """The rows (and their marks, but ``__live``) where ``where`` is true, in row order: gathered by
    position, so only those rows are copied whatever the chunks of ``rows``."""
    at = where.arg_true()
    picked = rows.gather(at)
    if marks is None:
        return picked
    return pl.concat([picked, marks.drop("__live", strict=False).gather(at)], how="horizontal")


def _distinct_items(
    keys: Sequence[QKey], items: pl.Series, schema: dict[str, pl.DataType], groups: Sequence[str]
) -> pl.DataFrame:
    """Distinct items per dims × group (columns: dims, ``region``, ``items``) from the item hashes
    of each market × dims (``keys[i]`` = (market, *dims), ``items[i]`` its list of hashes).

    An item shown in several markets of a group counts once. One sort per dims value serves
    every group: the low bits of each hash are replaced by its market's groups (a bit each), the
    hashes of all markets are sorted together, and each item's groups are the OR over its run
    (an item then has 64 - len(groups) bits of hash: two items of a partition's policy taken for
    one with a chance of about 1e-8). A sort per group cost twice as much (the groups overlap).
    """
    assert len(groups) <= 16, "at most 16 groups per report"
    width = len(groups)
    mask = np.uint64((1 << width) - 1)
    bits = [1 << j for j in range(width)]
    member = {key[0]: sum(bit for bit, g in zip(bits, groups, strict=True) if key[0] in mk.GROUPS[g]) for key in keys}
    by_dims: dict[QKey, list[int]] = {}
    for i, key in enumerate(keys):
        by_dims.setdefault(key[1:], []).append(i)
    rows = []
    flat, bounds = _lists(items)
    for d, members_of_d in by_dims.items():
        parts = [
            (flat[slice(*bounds[i])] & ~mask) | np.uint64(member[keys[i][0]])
            for i in members_of_d
            if member[keys[i][0]]
        ]
        values = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)
        item = values >> np.uint64(width)
        starts = np.flatnonzero(np.concatenate([[True], item[1:] != item[:-1]])) if values.size else values[:0]
        per_item = np.bitwise_or.reduceat(values & mask, starts) if values.size else values
        rows += [(*d, g, int(np.count_nonzero(per_item & np.uint64(bit)))) for bit, g in zip(bits, groups, strict=True)]
    return pl.DataFrame(rows, schema={**schema, "region": pl.String, "items": pl.Int64}, orient="row")


def fold(partials: Iterable[Partial], *, merge: bool = True) -> Partial:
    """Merge bucket partials in the order given (bucket order: the merge is deterministic).

    ``merge=False``: leave the quantile summaries in ``runs`` for :func:`merge_runs`, the costliest
    part of a fold, for the caller to do beside other work (the root's fold: the estimators need
    only the population counts).
    """
    acc = Partial()
    runs = acc.runs
    for p in partials:
        acc.rows += p.rows
        for key, pair in p.summaries.items():
            # Not a view of Ray's object store: a partial fetched from Ray unpacks its summaries
            # into memory of its own (Partial.__setstate__).
            runs.setdefault(key, []).append(pair)
        for name in _FRAMES:
            getattr(acc, name).extend(getattr(p, name))
        acc.statement_parts += p.statement_parts
        acc.statements_written += p.statements_written

    if merge:
        merge_runs(acc)
    # A merged partial is as compact as one partition's (one frame of each kind of counts): the
    # partials the driver folds stay the same size whatever the number of partitions.
    summed = ("counts", "n"), ("lineage", "n"), ("items", "items"), ("populations", "n"), ("language_populations", "n")
    for name, value in summed:
        frames = getattr(acc, name)
        if len(frames) > 1:
            setattr(acc, name, [_summed(frames, value)])
    return acc


def merge_runs(p: Partial) -> None:
    """Merge each key's summaries in ``p.runs`` into ``p.summaries``, once per key: merging partial
    after partial sorts the growing runs again each time (measured 0.38 s of the driver's
    10^7-row audit). A fold holds at most FAN_IN partials (pipelines.audit.buckets), so the runs
    are bounded too."""

    def merge(parts: list[tuple[Summary, Summary]]) -> tuple[Summary, Summary]:
        return Summary.merged([s for s, _ in parts]), Summary.merged([h for _, h in parts])

    # One thread: the audit runs this beside the estimators (on the cluster's workers or a
    # thread), which keep the other cores busy; threads here only add contention (measured on
    # 2 cores: 0.30 CPU-seconds with two threads against 0.17 with one, at 10^7 rows).
    p.summaries.update((key, merge(parts)) for key, parts in p.runs.items())
    p.runs = {}


def _summed(frames: Sequence[pl.DataFrame], value: str) -> pl.DataFrame:
    """Small frames of counts (``value``) summed by all their other columns, sorted by them."""
    frame = pl.concat(frames, how="vertical_relaxed")
    keys = [c for c in frame.columns if c != value]
    return frame.group_by(keys).agg(pl.col(value).sum()).select(frame.columns).sort(keys, nulls_last=True)


def population_counts(p: Partial) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The population counts of ``p`` (per market, per language) summed over its partitions."""
    return _one(p.populations, "n"), _one(p.language_populations, "n")


def _one(frames: Sequence[pl.DataFrame], value: str) -> pl.DataFrame:
    """``frames`` of counts summed into one: a fold leaves one summed frame of each kind
    (:func:`fold`), as does a lone partition, which is not summed again."""
    return frames[0] if len(frames) == 1 else _summed(frames, value)


def _q_row(s: Summary, h: Summary) -> dict[str, float | None]:
    hours = h.quantiles(list(ag.HOUR_QUANTILES.values()))
    row: dict[str, float | None] = dict(zip(ag.HOUR_QUANTILES, map(_float32_digits, hours), strict=True))
    for q, v in zip(ag.SCORE_QUANTILES, s.quantiles(ag.SCORE_QUANTILES), strict=True):
        row[f"score_p{round(q * 100)}"] = v
    return row


def _float32_digits(value: float | None) -> float | None:
    """``value`` to the digits of a float32 (the hours' precision, :func:`_hours`): 36.35, not the
    36.349998474121094 a float32 holds for it. Not the scores: they are the table's own float32
    values, reported as stored (as polars gives their quantiles)."""
    return None if value is None else float(str(np.float32(value)))


def aggregates(p: Partial, *, dims: Sequence[str], groups: Sequence[str], schema: pl.Schema) -> ag.Aggregates:
    """The report's :class:`~pipelines.audit.aggregate.Aggregates` from the merged partials."""
    dims = list(dims)
    counts, lineage = (_one(getattr(p, name), "n") for name in ("counts", "lineage"))
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
    return ag.Aggregates(counts=counts, lineage=lineage, market_q=market_q, group_q=group_q, dims=tuple(dims))
