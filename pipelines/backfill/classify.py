"""Key-level planning of one hash bucket of content ids: what each new backlog row needs.

The planner splits the segment's rows by a hash of ``content_id`` into buckets: map tasks read
the metadata columns of a group of files (no media) and split their rows by bucket; one reduce
task per bucket gathers its rows, looks those ids up in ``scores``, ``decisions`` and
``dead_letters`` (this model and pack only), and decides for each row:

- ``score``: new work (the default, never listed);
- ``dead``: refused on metadata (no id, unknown region, market or content type) or a duplicate
  id: the first copy in (table version, created_at, file, row) order is scored, later copies of
  the same id, in this segment or after an earlier one, are dead letters;
- ``known``: an id already scored, arriving again in a file a MERGE/UPDATE rewrote: re-scored
  only if its content hash changed (an edit), skipped otherwise;
- ``redecide``: this very row is scored but has no decisions under this pack: decided from the
  stored scores, without the model;
- ``skip``: already done (this very row scored and decided, or dead-lettered before).

Only the exceptions (everything but ``score``) and per-unit counts leave the task, so the
driver's memory follows the exceptions, not the backlog. Memory in a task follows its bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.backfill.files import WorkFile
from pipelines.backfill.read import META, Slice, read_slice
from pipelines.backfill.units import Units
from pipelines.buckets import bucket_expr
from pipelines.lake import Lake, table_exists
from pipelines.markets import ALL_MARKETS
from pipelines.schema import SHORT_CONTENT_TYPES

WORK = ("score", "dead", "known", "redecide")
EXCEPTION_SCHEMA = {
    "unit": pl.Int64,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "status": pl.String,
    "content_id": pl.String,
    "locator": pl.String,
    "error_class": pl.String,
    "message": pl.String,
    "known_sha": pl.String,
    "recorded": pl.Boolean,
}


@dataclass(frozen=True)
class ScanSpec:
    """Everything a bucket task needs (pickled to Ray workers; small: files, not rows)."""

    table_uri: str
    where: str  # how locators name the backlog: "backlog" for the lake's own, else its URI
    schema: pa.Schema
    files: tuple[WorkFile, ...]
    chunk_rows: int
    lake_root: str
    model_version: str
    policy_version: str
    since: datetime | None
    until: datetime | None
    retry_dead_letters: bool
    full_scan: bool  # positions of earlier rows are not comparable (log gone): known ids are done
    n_buckets: int


def split_files(spec: ScanSpec, lo: int, hi: int) -> list[pl.DataFrame]:
    """Map step: metadata rows of files ``[lo, hi)`` with their positions, split by bucket.

    Returns ``n_buckets`` frames (empty where a bucket has no row of these files). Memory: the
    metadata of these files (about 150 B a row).
    """
    parts: list[list[pl.DataFrame]] = [[] for _ in range(spec.n_buckets)]
    for index in range(lo, hi):
        work = spec.files[index]
        for batch in read_slice(spec.table_uri, Slice(work, 0, work.rows), META, spec.schema):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(
                pl.lit(index, pl.Int64).alias("file_index"),
                pl.lit(work.rewrite).alias("rewrite"),
                bucket_expr(spec.n_buckets).alias("__bucket"),
            )
            for (bucket,), part in frame.partition_by("__bucket", as_dict=True).items():
                parts[int(bucket)].append(part.drop("__bucket"))  # type: ignore[call-overload]
    return [pl.concat(p, how="vertical_relaxed") if p else pl.DataFrame() for p in parts]


def _problem() -> pl.Expr:
    known = pl.Series(list(ALL_MARKETS))
    bad_market = pl.col("markets").list.eval(~pl.element().is_in(known)).list.any()
    return (
        pl.when(pl.col("content_id").is_null())
        .then(pl.lit("MissingContentId|row has no content_id"))
        .when(~pl.col("region").is_in(known) | pl.col("region").is_null())
        .then(pl.format("UnknownRegion|region '{}' is not a known ISO 3166-1 market", pl.col("region")))
        .when(bad_market.fill_null(False))
        .then(pl.lit("UnknownMarket|markets lists a code that is not a known market"))
        .when(~pl.col("content_type").is_in(pl.Series(list(SHORT_CONTENT_TYPES))) | pl.col("content_type").is_null())
        .then(pl.format("UnknownContentType|content_type '{}' is not a DSA content type", pl.col("content_type")))
        .when(pl.col("created_at").is_null())
        .then(pl.lit("MissingCreatedAt|row has no created_at"))
        .otherwise(None)
    )


def _scan(lake: Lake, table: str, model_version: str) -> pl.LazyFrame | None:
    uri = lake.path(table)
    if not table_exists(uri):
        return None
    return pl.scan_delta(uri).filter(pl.col("model_version") == model_version)


def _known_scores(lake: Lake, model_version: str, ids: pl.Series) -> pl.DataFrame:
    """(content_id, k_file, k_row, k_sha) of score rows of this model for ``ids``."""
    lf = _scan(lake, "scores", model_version)
    empty = pl.DataFrame(
        schema={"content_id": pl.String, "k_file": pl.String, "k_row": pl.Int64, "k_sha": pl.String},
    )
    if lf is None:
        return empty
    names = lf.collect_schema().names()
    file_col = pl.col("source_file") if "source_file" in names else pl.lit(None, pl.String)
    row_col = pl.col("source_row") if "source_row" in names else pl.lit(None, pl.Int64)
    return (
        lf.filter(pl.col("content_id").is_in(ids.implode()))
        .select("content_id", file_col.alias("k_file"), row_col.alias("k_row"), pl.col("content_sha256").alias("k_sha"))
        .unique(["content_id", "k_file", "k_row"])
        .collect()
    )


def _decided(lake: Lake, model_version: str, policy_version: str, ids: pl.Series) -> pl.Series:
    lf = _scan(lake, "decisions", model_version)
    if lf is None:
        return pl.Series("content_id", [], pl.String)
    return (
        lf.filter((pl.col("policy_version") == policy_version) & pl.col("content_id").is_in(ids.implode()))
        .select("content_id")
        .unique()
        .collect()["content_id"]
    )


def _dead_locators(lake: Lake, model_version: str, locators: pl.Series) -> pl.Series:
    lf = _scan(lake, "dead_letters", model_version)
    if lf is None:
        return pl.Series("locator", [], pl.String)
    return lf.filter(pl.col("locator").is_in(locators.implode())).select("locator").unique().collect()["locator"]


def _hashed_ids(lake: Lake, ids: pl.Series) -> pl.Series:
    """Ids whose media is already in ``media_hashes`` (hashed by any model's backfill)."""
    uri = lake.path("media_hashes")
    if not table_exists(uri):
        return pl.Series("content_id", [], pl.String)
    return (
        pl.scan_delta(uri)
        .filter(pl.col("content_id").is_in(ids.implode()))
        .select("content_id")
        .unique()
        .collect()["content_id"]
    )


def classify(spec: ScanSpec, rows: pl.DataFrame) -> pl.DataFrame:
    """Add ``status``, ``locator``, ``error_class``, ``message``, ``known_sha``, ``recorded`` to ``rows``."""
    if rows.height == 0:
        return rows
    lake = Lake(spec.lake_root)
    rows = rows.with_columns(_problem().alias("__problem")).sort(
        "source_version", "created_at", "file_index", "source_row", nulls_last=True
    )
    rows = rows.with_columns(
        pl.when(pl.col("content_id").is_not_null())
        .then(pl.col("content_id").cum_count().over("content_id"))
        .otherwise(1)
        .alias("__occurrence")
    )
    ids = rows["content_id"].drop_nulls().unique()
    known = _known_scores(lake, spec.model_version, ids)
    same_pos = (
        known.join(
            rows.select("content_id", pl.col("source_file").alias("k_file"), pl.col("source_row").alias("k_row")),
            on=["content_id", "k_file", "k_row"],
            how="semi",
        )
        .select("content_id", "k_file", "k_row")
        .with_columns(pl.lit(True).alias("__same"))
    )
    legacy = known.filter(pl.col("k_file").is_null())["content_id"].unique()
    latest_sha = known.group_by("content_id").agg(pl.col("k_sha").last().alias("known_sha"))
    rows = (
        rows.join(
            same_pos,
            left_on=["content_id", "source_file", "source_row"],
            right_on=["content_id", "k_file", "k_row"],
            how="left",
        )
        .join(latest_sha, on="content_id", how="left")
        .with_columns(
            pl.col("__same").fill_null(False),
            pl.col("content_id").is_in(known["content_id"].unique().implode()).alias("__known"),
        )
    )
    done = pl.col("__same") | pl.col("content_id").is_in(legacy.implode()) | pl.lit(spec.full_scan)
    decided = _decided(lake, spec.model_version, spec.policy_version, rows.filter(done)["content_id"].unique())
    null_locator = pl.format("{}@{}#row={}", pl.lit(spec.where), pl.col("source_file"), pl.col("source_row"))
    copy_locator = pl.format("{}#{}:{}", pl.col("content_id"), pl.col("source_file"), pl.col("source_row"))
    duplicate = pl.format(
        "DuplicateContentId|content_id '{}' appears more than once in the backlog; the first copy is scored",
        pl.col("content_id"),
    )
    status = (
        pl.when(pl.col("__problem").is_not_null())
        .then(pl.lit("dead"))
        .when(pl.col("__known") & done)
        .then(pl.when(pl.col("content_id").is_in(decided.implode())).then(pl.lit("skip")).otherwise(pl.lit("redecide")))
        .when(pl.col("__known") & pl.col("rewrite"))
        .then(pl.lit("known"))
        .when(pl.col("__known") | (pl.col("__occurrence") > 1))
        .then(pl.lit("dead"))
        .otherwise(pl.lit("score"))
    )
    rows = rows.with_columns(status.alias("status"))
    is_dup = (pl.col("status") == "dead") & pl.col("__problem").is_null()
    rows = rows.with_columns(
        pl.when(pl.col("content_id").is_null())
        .then(null_locator)
        .when(is_dup)
        .then(copy_locator)
        .otherwise(pl.col("content_id"))
        .alias("locator"),
        pl.when(is_dup).then(duplicate).otherwise(pl.col("__problem")).alias("__problem"),
    ).with_columns(
        pl.col("__problem").str.split_exact("|", 1).struct.rename_fields(["error_class", "message"]).alias("__p")
    )
    rows = rows.unnest("__p")
    # Rows dead-lettered by an earlier run: skipped, or with --retry-dead-letters tried again
    # without recording the same failure twice.
    maybe_dead = rows.filter(pl.col("status").is_in(["dead", "score"]))["locator"].unique()
    seen_dead = _dead_locators(lake, spec.model_version, maybe_dead)
    was_dead = pl.col("locator").is_in(seen_dead.implode()) & pl.col("status").is_in(["dead", "score"])
    if not spec.retry_dead_letters:
        rows = rows.with_columns(pl.when(was_dead).then(pl.lit("skip")).otherwise(pl.col("status")).alias("status"))
        rows = rows.with_columns(pl.lit(False).alias("recorded"))
    else:
        rows = rows.with_columns(was_dead.alias("recorded"))
    # Media is hashed once, whatever model scores it: units whose rows are all hashed skip it.
    hashed = _hashed_ids(lake, rows.filter(pl.col("status") == "score")["content_id"].unique())
    rows = rows.with_columns(pl.col("content_id").is_in(hashed.implode()).fill_null(False).alias("hashed"))
    return rows


def in_window(spec: ScanSpec) -> pl.Expr:
    expr = pl.lit(True)
    if spec.since is not None:
        expr = expr & (pl.col("created_at") >= spec.since)
    if spec.until is not None:
        expr = expr & (pl.col("created_at") < spec.until)
    # A row without created_at cannot be placed in a window; it is dead-lettered by any run.
    return expr.fill_null(pl.col("created_at").is_null())


def order_key_columns() -> tuple[str, ...]:
    """The --limit order: table version, created_at, content_id, then file and row."""
    return ("source_version", "created_at", "content_id", "source_file", "source_row")


def first_keys(spec: ScanSpec, rows: pl.DataFrame, limit: int) -> pl.DataFrame:
    """The first ``limit`` work rows of this bucket in the --limit order (keys only)."""
    if rows.height == 0:
        return pl.DataFrame()
    work = rows.filter(pl.col("status").is_in(list(WORK)) & in_window(spec))
    return work.select(order_key_columns()).sort(order_key_columns(), nulls_last=True).head(limit)


def finish(spec: ScanSpec, rows: pl.DataFrame, cutoff: tuple[Any, ...] | None) -> dict[str, Any]:
    """Exceptions, per-unit work counts and status counts of this bucket, after window and --limit."""
    empty = {"exceptions": pl.DataFrame(schema=EXCEPTION_SCHEMA), "units": pl.DataFrame(), "counts": {}}
    if rows.height == 0:
        return empty
    units = Units(spec.files, spec.chunk_rows)
    offsets = pl.Series("offset", units.offsets[:-1], pl.Int64)
    rows = rows.with_columns(
        ((pl.col("file_index").replace_strict(list(range(len(offsets))), offsets.to_list()) + pl.col("source_row"))
         // spec.chunk_rows).alias("unit")
    )  # fmt: skip
    selected = in_window(spec)
    if cutoff is not None:
        selected = selected & before_or_at(cutoff)
    rows = rows.with_columns(selected.alias("__in"))
    counts = {
        s: int(n)
        for s, n in rows.filter(pl.col("__in")).group_by("status").len().iter_rows()  # type: ignore[misc]
    }
    counts["out"] = int(rows.filter(~pl.col("__in")).height)
    exceptions = rows.filter(pl.col("__in") & ((pl.col("status") != "score") | pl.col("recorded"))).select(
        list(EXCEPTION_SCHEMA)
    )
    per_unit = (
        rows.filter(pl.col("__in") & pl.col("status").is_in(list(WORK)))
        .group_by("unit")
        .agg(
            pl.len().alias("work"),
            (pl.col("status") == "score").sum().alias("to_score"),
            (pl.col("status") == "score").and_(~pl.col("hashed")).sum().alias("to_hash"),
        )
    )
    return {"exceptions": exceptions.cast(EXCEPTION_SCHEMA), "units": per_unit, "counts": counts}  # type: ignore[arg-type]


def before_or_at(cutoff: tuple[Any, ...]) -> pl.Expr:
    """Rows whose --limit key sorts at or before ``cutoff`` (nulls sort last)."""
    cols = order_key_columns()
    expr: pl.Expr = pl.lit(True)
    # Lexicographic comparison built from the last column backwards: a < b or (a == b and rest).
    for col, value in reversed(list(zip(cols, cutoff, strict=True))):
        c = pl.col(col)
        if value is None:
            less, equal = c.is_not_null(), c.is_null()
        else:
            less, equal = (c < value).fill_null(False), (c == value).fill_null(False)
        expr = less | (equal & expr)
    return expr


def scan_bucket(
    spec: ScanSpec, bucket: int, limit: int | None, *parts: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Reduce step: classify one bucket's rows (``parts`` from every map task); returns
    (classified rows, first keys for --limit). Memory: one bucket."""
    flat = [q for p in parts for q in (p if isinstance(p, list) else [p])]  # one bucket: a list per map
    present = [p for p in flat if p.height]
    rows = classify(spec, pl.concat(present, how="vertical_relaxed") if present else pl.DataFrame())
    keys = first_keys(spec, rows, limit) if limit is not None else pl.DataFrame()
    return rows, keys
