"""Plan a backfill: pin the backlog version, validate metadata, split into chunks, skip done work.

Everything here reads metadata columns only (no media) through polars, so planning a
backlog of millions of rows costs seconds and little memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.backfill.chunks import assign_chunks, job_key
from pipelines.backfill.config import BackfillConfig
from pipelines.errors import BadInputError
from pipelines.lake import table_exists
from pipelines.markets import ALL_MARKETS
from pipelines.schema import BACKLOG, SHORT_CONTENT_TYPES, schema_problems

META_COLUMNS = ("content_id", "created_at", "region", "markets", "language", "content_type")


@dataclass(frozen=True)
class Plan:
    """What one backfill run will do.

    to_score: content_id, chunk_id, copies (how many backlog rows carry that id).
    to_redecide: content_id, chunk_id of rows scored by this model but lacking decisions
        under this policy version (for example after a crash between the two commits).
    invalid: rows refused on metadata alone (null or duplicate id, unknown region...).
    """

    source_uri: str
    source_version: int
    job: str
    n_chunks: int
    selected: int
    to_score: pl.DataFrame
    to_redecide: pl.DataFrame
    invalid: pl.DataFrame
    skipped_done: int
    skipped_dead: int

    def expected_rows(self) -> dict[int, int]:
        """Rows each chunk will receive from the reader (duplicates included)."""
        counts = self.to_score.group_by("chunk_id").agg(pl.col("copies").sum())
        return dict(zip(counts["chunk_id"].to_list(), counts["copies"].to_list(), strict=True))


def _ids(uri: str, **where: str) -> pl.DataFrame:
    """Distinct content_id (and locator where present) of a lake table filtered by ``where``."""
    if not table_exists(uri):
        return pl.DataFrame({"content_id": []}, schema={"content_id": pl.String})
    lf = pl.scan_delta(uri)
    for col, value in where.items():
        lf = lf.filter(pl.col(col) == value)
    return lf.select("content_id").unique().collect()


def _dead_locators(uri: str, model_version: str) -> set[str]:
    if not table_exists(uri):
        return set()
    lf = pl.scan_delta(uri).filter(pl.col("model_version") == model_version)
    return set(lf.select("locator").unique().collect()["locator"].to_list())


def _check_backlog_columns(uri: str, version: int) -> None:
    from deltalake import DeltaTable

    dt = DeltaTable(uri, version=version)
    features = set(dt.protocol().reader_features or [])
    if "deletionVectors" in features:
        raise BadInputError(
            f"{uri}: the table uses deletion vectors, which this reader does not honour; "
            "run OPTIMIZE/PURGE to rewrite them or copy the table without them"
        )
    import pyarrow as pa

    schema = pa.schema(dt.schema().to_arrow())
    problems = schema_problems(
        schema, BACKLOG, required=("content_id", "created_at", "region", "language", "content_type", "text")
    )
    if problems:
        raise BadInputError(f"{uri}: " + "; ".join(problems) + " (see docs/architecture.md, 'The lake')")


def make_plan(config: BackfillConfig, *, model_version: str, policy_version: str) -> Plan:
    """Pin the backlog, select and validate rows, chunk them and subtract finished work."""
    from deltalake import DeltaTable

    uri = config.backlog_uri
    if not table_exists(uri):
        raise BadInputError(
            f"--backlog {uri}: no Delta table there; run 'batchjobs generate' or point --backlog at yours"
        )
    version = DeltaTable(uri).version()
    _check_backlog_columns(uri, version)

    lf = pl.scan_delta(uri, version=version)
    names = lf.collect_schema().names()
    cols = [c for c in META_COLUMNS if c in names]
    lf = lf.select(cols).with_row_index("row")
    if "markets" not in names:
        lf = lf.with_columns(pl.concat_list(pl.col("region")).alias("markets"))
    if config.since is not None:
        lf = lf.filter(pl.col("created_at") >= config.since)
    if config.until is not None:
        lf = lf.filter(pl.col("created_at") < config.until)
    meta = lf.collect().sort("created_at", "content_id", "row", nulls_last=True)
    if config.limit is not None:
        meta = meta.head(config.limit)

    # Locator: the content id when the row has one, else where it sits in this version. The
    # lake's own backlog is named relative to the lake, so a copied or moved lake keeps them.
    where = "backlog" if uri == config.lake.path("backlog") else uri
    meta = meta.with_columns(
        pl.when(pl.col("content_id").is_null())
        .then(pl.format("{}@v{}#row={}", pl.lit(where), pl.lit(version), pl.col("row")))
        .otherwise(pl.col("content_id"))
        .alias("locator"),
        pl.col("content_id").cum_count().over("content_id").alias("occurrence"),
    )
    meta = meta.with_columns(
        pl.when(pl.col("occurrence") > 1)
        .then(pl.format("{}#copy={}", pl.col("content_id"), pl.col("occurrence")))
        .otherwise(pl.col("locator"))
        .alias("locator")
    )
    n_chunks = max(1, -(-meta.height // config.chunk_rows))
    job = job_key(
        "backfill",
        where,
        version,
        model_version,
        policy_version,
        config.since,
        config.until,
        config.limit,
        config.chunk_rows,
    )
    meta = meta.with_columns(assign_chunks(meta["locator"], n_chunks))

    known = pl.Series(list(ALL_MARKETS))
    bad_market = pl.col("markets").list.eval(~pl.element().is_in(known)).list.any()
    problem = (
        pl.when(pl.col("content_id").is_null())
        .then(pl.lit("MissingContentId|row has no content_id"))
        .when(pl.col("occurrence") > 1)
        .then(
            pl.format(
                "DuplicateContentId|content_id '{}' appears more than once; the first copy is scored",
                pl.col("content_id"),
            )
        )
        .when(~pl.col("region").is_in(known) | pl.col("region").is_null())
        .then(pl.format("UnknownRegion|region '{}' is not a known ISO 3166-1 market", pl.col("region")))
        .when(bad_market.fill_null(False))
        .then(pl.lit("UnknownMarket|markets lists a code that is not a known market"))
        .when(~pl.col("content_type").is_in(pl.Series(list(SHORT_CONTENT_TYPES))) | pl.col("content_type").is_null())
        .then(pl.format("UnknownContentType|content_type '{}' is not a DSA content type", pl.col("content_type")))
        .otherwise(None)
    )
    meta = meta.with_columns(problem.alias("problem"))

    lake = config.lake
    dead = set() if config.retry_dead_letters else _dead_locators(lake.path("dead_letters"), model_version)
    invalid = (
        meta.filter(pl.col("problem").is_not_null() & ~pl.col("locator").is_in(pl.Series(list(dead), dtype=pl.String)))
        .with_columns(
            pl.col("problem").str.split_exact("|", 1).struct.rename_fields(["error_class", "message"]).alias("p")
        )
        .unnest("p")
        .select("content_id", "locator", "chunk_id", "error_class", "message")
    )
    valid = meta.filter(pl.col("problem").is_null())
    # Every backlog row with a valid id reaches the reader, duplicates included: count them.
    copies = meta.filter(pl.col("content_id").is_not_null()).group_by("content_id").agg(pl.len().alias("copies"))
    valid = valid.join(copies, on="content_id", how="left")

    scored = _ids(lake.path("scores"), model_version=model_version)
    decided = _ids(lake.path("decisions"), model_version=model_version, policy_version=policy_version)
    is_scored = pl.col("content_id").is_in(scored["content_id"])
    is_dead = pl.col("locator").is_in(pl.Series(list(dead), dtype=pl.String))
    to_score = valid.filter(~is_scored & ~is_dead).select("content_id", "chunk_id", pl.col("copies").cast(pl.Int64))
    to_redecide = valid.filter(is_scored & ~pl.col("content_id").is_in(decided["content_id"])).select(
        "content_id", "chunk_id"
    )
    return Plan(
        source_uri=uri,
        source_version=version,
        job=job,
        n_chunks=n_chunks,
        selected=meta.height,
        to_score=to_score,
        to_redecide=to_redecide,
        invalid=invalid,
        skipped_done=valid.filter(is_scored).height,
        skipped_dead=valid.filter(is_dead).height
        + meta.filter(pl.col("problem").is_not_null()).height
        - invalid.height,
    )
