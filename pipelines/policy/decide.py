"""The one decision function: scores × pack -> one decision row per (content, market, policy).

The backfill, the sweep and the online endpoint all call :func:`decide`, so they can never
disagree. It is pure (no I/O, no clock) and vectorised with polars: no Python runs per row.

Semantics (documented in docs/policy-packs.md, "How decisions are made"):

- Input is long: one row per (content_id, head) with ``policy_id`` naming the model head
  that produced ``score`` (as the ``scores`` table stores it), the item's ``region`` and
  ``markets``. Every pack policy whose ``head`` matches reads that row, so
  ``cross_border_data`` reads the ``personal_data`` score. Rows of heads no policy reads
  produce nothing.
- Markets: the item's ``markets`` list, deduplicated; null or empty means ``[region]``.
- Thresholds per market: market override > EU > EEA > GLOBAL > default, per tier
  (:meth:`Policy.thresholds_for`); markets no override names use the default.
- Action: the most severe tier whose threshold the score reaches (``score >= threshold``,
  compared in float32, the type both columns have in the lake); ``none`` below every tier
  or for a null score. ``threshold`` is the chosen tier's threshold, null for ``none``.
- Conditions: where a policy's conditions do not hold (e.g. ``cross_border_data`` in a
  market inside the origin's transfer zone) the row is still emitted with action ``none``,
  so the decisions table is complete: one row per (content_id, market, policy_id).
- ``automated``: ``FULLY`` for a tier marked ``fully_automated: true`` and for ``none``
  (no human takes part in deciding not to act); ``PARTIALLY`` for a tier that waits for
  human review (the model proposes, a person confirms). ``NOT_AUTOMATED`` is left to rows
  with source ``human_review``/``appeal``.
- Output rows follow input order (then market order, then pack policy order), so
  deciding many small batches and concatenating gives the same rows as one big batch.
"""

from __future__ import annotations

import polars as pl

from pipelines import markets as mk
from pipelines.errors import BadInputError
from pipelines.policy.model import TIER_ACTIONS, Pack

# Columns decide adds (a subset of pipelines.schema.DECISIONS); inputs may not carry them.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "content_id", "market", "policy_id", "policy_version", "action", "score", "threshold", "automated", "source",
)  # fmt: skip
REQUIRED_COLUMNS: tuple[str, ...] = ("content_id", "policy_id", "score", "region")
SOURCE = "model"
_CONSUMED = ("content_id", "policy_id", "score", "markets")
_LEVELS = len(TIER_ACTIONS) + 1  # level 0 is "none", level k the k-th tier of a policy
# Market codes: index in ALL_MARKETS; every market no override can name shares code _W.
_CODES: dict[str, int] = {m: i for i, m in enumerate(mk.ALL_MARKETS)}
_W = len(mk.ALL_MARKETS)


class _Tables:
    """The pack laid out as small lookup arrays that rows index into (built once per pack).

    Rows carry integer codes: policy ``p``, market ``m`` (``_W`` for an unnamed market) and
    tier level ``k``; a threshold is ``thresholds[(p * (_W + 1) + m) * _LEVELS + k]``.
    """

    def __init__(self, pack: Pack) -> None:
        # Policies decided by banks alone (no head) have no score to decide from: left out here.
        policies = pack.model_policies
        self.policy_ids = pl.Series("policy_id", [p.id for p in policies], dtype=pl.String)
        head_of = [pack.heads.index(p.head) for p in policies if p.head is not None]
        self.one_policy_per_head = len(set(head_of)) == len(head_of)
        # With one policy per head the head code IS the policy code (heads follow policy order).
        self.head_codes = {h: i for i, h in enumerate(pack.heads)}
        self.head_policies = pl.DataFrame(
            {"__h": head_of, "__p": list(range(len(policies)))},
            schema={"__h": pl.UInt32, "__p": pl.UInt32},
        )
        actions: list[str] = []
        automated: list[str] = []
        thresholds: list[float | None] = []
        for policy in policies:
            pad = _LEVELS - 1 - len(policy.tiers)
            actions += ["none", *policy.actions, *(["none"] * pad)]
            automated += ["FULLY", *("FULLY" if t.fully_automated else "PARTIALLY" for t in policy.tiers)]
            automated += ["FULLY"] * pad
            for market in (*mk.ALL_MARKETS, "*"):
                resolved = policy.thresholds_for(market)
                thresholds += [None, *(resolved[a] for a in policy.actions), *([None] * pad)]
        self.actions = pl.Series(actions, dtype=pl.String)
        self.automated = pl.Series(automated, dtype=pl.String)
        self.thresholds = pl.Series(thresholds, dtype=pl.Float32)

    def applies(self, pack: Pack) -> pl.Expr:
        """Whether each row's policy applies to its (region, market); True where no conditions."""
        zone_of = {c: min(mk.transfer_zone(c)) for c in mk.ALL_MARKETS}
        # Zone id per market code; unnamed markets get -1 and are compared by name below,
        # since transfer_zone() makes every unknown country its own zone.
        zone_ids = pl.Series([mk.ALL_MARKETS.index(zone_of[c]) for c in mk.ALL_MARKETS] + [-1], dtype=pl.Int32)
        r, m = pl.col("__r"), pl.col("__m")
        expr: pl.Expr = pl.lit(True)
        for i, policy in enumerate(pack.model_policies):
            c = policy.conditions
            if c.empty:
                continue
            holds: pl.Expr = pl.lit(True)
            if c.regions is not None:
                holds = holds & r.is_in([_CODES[x] for x in c.regions])
            if c.markets is not None:
                holds = holds & m.is_in([_CODES[x] for x in c.markets])
            if c.outside_transfer_zone:
                same_zone = (
                    pl.when((r == _W) & (m == _W))
                    .then(pl.col("region") == pl.col("market"))
                    .otherwise(pl.lit(zone_ids).gather(r) == pl.lit(zone_ids).gather(m))
                )
                holds = holds & ~same_zone
            expr = pl.when(pl.col("__p") == i).then(holds).otherwise(expr)
        return expr.fill_null(False)


def _tables_of(pack: Pack) -> _Tables:
    """The pack's lookup tables, built on first use and kept on the (immutable) pack.

    Building them costs a few milliseconds, which would dominate the small batches of the
    online endpoint; the pack is frozen, so the cache can never go stale.
    """
    tables = pack.__dict__.get("_decide_tables")
    if tables is None:
        tables = _Tables(pack)
        pack.__dict__["_decide_tables"] = tables
    return tables


def _code(col: str, codes: dict[str, int] = _CODES) -> pl.Expr:
    return pl.col(col).replace_strict(codes, default=_W, return_dtype=pl.UInt32)


def _first_occurrences(ex: pl.DataFrame, max_len: int) -> pl.DataFrame:
    """Drop repeated markets within one row's list, keeping list order.

    Lists are short, so comparing each element with the few before it in the same row
    (shifts) is much cheaper than hashing every (row, market) pair.
    """
    key = pl.col("__mk")
    if (ex["__m"] == _W).any():
        # Markets no override names share code _W; tell them apart by name for this check.
        extra = ex.filter(pl.col("__m") == _W)["market"].unique().sort().to_list()
        ext = {**_CODES, **{m: _W + 1 + i for i, m in enumerate(extra)}}
        ex = ex.with_columns(pl.col("market").replace_strict(ext, return_dtype=pl.UInt32).alias("__mk"))
    else:
        ex = ex.with_columns(pl.col("__m").alias("__mk"))
    if max_len > 8:
        first = (pl.col("__row").cast(pl.UInt64) * (1 << 32) + key).is_first_distinct()
    else:
        row = pl.col("__row")
        dup: pl.Expr = pl.lit(False)
        for j in range(1, max_len):
            dup = dup | ((row == row.shift(j)) & (key == key.shift(j))).fill_null(False)
        first = ~dup
    keep = ex.select(first.alias("k"))["k"]
    return (ex if keep.all() else ex.filter(keep)).drop("__mk")


def _markets(scores: pl.DataFrame) -> pl.DataFrame:
    """(__row, market, __m) for every market of every row: deduplicated, null/empty -> [region].

    ``__m`` is the market's code (index in ALL_MARKETS, ``_W`` for any other market).
    """
    if "markets" not in scores.columns:
        ex = scores.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("__row"), pl.col("region").alias("market"))
        return ex.with_columns(_code("market").alias("__m"))
    idx = scores.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("__row"), "region", "markets")
    lengths = idx["markets"].list.len()
    ex = idx.select("__row", pl.col("markets").alias("market")).explode("market")
    empty = idx["markets"].null_count() + int((lengths == 0).sum())
    if ex["market"].null_count() != empty:
        # Rare: null elements inside non-empty lists. Drop them (the slow, exact way).
        listed = pl.col("markets").list.drop_nulls()
        ex = idx.select("__row", pl.when(listed.list.len() > 0).then(listed).alias("market")).explode("market")
    ex = ex.with_columns(pl.col("market").fill_null(idx["region"].gather(ex["__row"])))
    ex = ex.with_columns(_code("market").alias("__m"))
    max_len = int(lengths.max() or 0)  # type: ignore[arg-type]
    return _first_occurrences(ex, max_len) if max_len > 1 else ex


def decide(scores: pl.DataFrame, pack: Pack) -> pl.DataFrame:
    """Decide every (content_id, market, policy) of ``scores`` under ``pack``.

    scores: long format, columns ``content_id``, ``policy_id`` (the head), ``score``,
    ``region`` (str), optionally ``markets`` (list[str]), plus any passthrough columns
    (kept on every output row of their input row). Returns columns
    :data:`OUTPUT_COLUMNS` followed by the passthrough columns (``region`` included).
    Raises :class:`~pipelines.errors.BadInputError` for missing or clashing columns and for
    rows with neither a region nor markets.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in scores.columns]
    if missing:
        raise BadInputError(f"decide: scores lack column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")
    clash = [c for c in scores.columns if (c in OUTPUT_COLUMNS and c not in _CONSUMED) or c.startswith("__")]
    if clash:
        raise BadInputError(f"decide: scores carry column(s) {', '.join(clash)} that decide writes; drop them first")
    tables = _tables_of(pack)
    passthrough = [c for c in scores.columns if c not in _CONSUMED]
    ex = _markets(scores)
    if ex["market"].null_count():
        bad = scores["content_id"].gather(ex.filter(pl.col("market").is_null())["__row"].head(3))
        raise BadInputError(
            "decide: score rows with neither region nor markets cannot be decided per market "
            f"(e.g. content_id {', '.join(map(str, bad))}); dead-letter them before deciding"
        )
    per_row = scores.select(
        pl.col("score").cast(pl.Float32),
        pl.col("region"),
        _code("region").alias("__r"),
        pl.col("policy_id").replace_strict(tables.head_codes, default=None, return_dtype=pl.UInt32).alias("__h"),
    )
    rows = ex.with_columns(per_row.gather(ex["__row"])).filter(pl.col("__h").is_not_null())
    if tables.one_policy_per_head:
        rows = rows.rename({"__h": "__p"})
    else:
        rows = rows.join(tables.head_policies, on="__h", how="inner", maintain_order="left_right")
    base = ((pl.col("__p") * (_W + 1) + pl.col("__m")) * _LEVELS).cast(pl.UInt32)
    # The most severe tier reached is the number of tiers reached, because validated packs
    # have thresholds strictly increasing along the tiers in every market (validate.py).
    # Counting is about twice as fast as taking a maximum of per-tier levels.
    level: pl.Expr = pl.lit(0, dtype=pl.UInt32)
    for k in range(1, _LEVELS):
        reached = pl.col("score") >= pl.lit(tables.thresholds).gather(base + k)
        level = level + reached.fill_null(False).cast(pl.UInt32)
    rows = rows.with_columns(pl.when(tables.applies(pack)).then(level).otherwise(0).alias("__k"))
    kind = pl.col("__p") * _LEVELS + pl.col("__k")
    out = rows.select(
        pl.col("__row"),
        pl.col("market"),
        pl.lit(tables.policy_ids).gather(pl.col("__p")).alias("policy_id"),
        pl.lit(pack.policy_version).alias("policy_version"),
        pl.lit(tables.actions).gather(kind).alias("action"),
        pl.col("score"),
        pl.lit(tables.thresholds).gather(base + pl.col("__k")).alias("threshold"),
        pl.lit(tables.automated).gather(kind).alias("automated"),
        pl.lit(SOURCE).alias("source"),
    )
    kept = scores.select("content_id", *passthrough).gather(out["__row"])
    return pl.concat([kept.select("content_id"), out.drop("__row"), kept.drop("content_id")], how="horizontal")
