"""Re-match stored media hashes against a bank: decisions with ``source = hash_match``, exactly once.

When a bank gains entries, :func:`rematch_bank` matches **only the new entries** against every
stored hash of ``media_hashes`` (read one group of data files at a time; no media, no model),
turns frame matches into item matches (vPDQ's rule, ``pipelines.hashes.video``: an image matches
when its hash does, a video when >= 80% of its good-quality keyframes do), drops items that an
allow-list bank of the binding also matches, and writes one decision per (content_id, market,
policy_id) for the item's markets:

| column | value |
|---|---|
| ``source`` | ``hash_match`` |
| ``action``, ``automated`` | the binding's action; ``FULLY`` when ``fully_automated``, else ``PARTIALLY`` |
| ``model_version`` | ``hash:<bank>@<list version>`` (the bank version matched) |
| ``model_name`` | ``pdq:<external id>:<distance>``: the entry with the smallest distance to the item's frames and that distance (``pdq::<d>`` for an entry without an id); no hash values |
| ``run_id`` | this re-match's run id; ``source_version`` the ``media_hashes`` version read |
| ``score``, ``threshold`` | null (a match has no model score) |
| ``chunk_id`` | the content-id bucket (below) |

Item metadata (region, markets, created_at, language, content type, content hash) comes from the
item's latest ``scores`` row, so the backlog is never read; an item hashed but never scored is
skipped and counted.

**Exactly once.** Decisions commit per content-id bucket (``crc32(content_id) % BUCKETS``) with
the application transaction ``hash_match/<bank>/<policy>/t<threshold>/v<list version>/b<bucket>``,
empty buckets included: so a killed run resumes where it stopped, and a second run finds every
bucket of the bank's latest version committed and adds nothing. The list version up to which a
binding is matched is the highest one whose buckets are all committed; the next run matches the
entries that arrived after it. A binding whose threshold changed has no committed version under its
new transaction names: it is re-matched in full. An item already matched under the policy (its
latest ``hash_match`` row is restrictive) gets no second row.

**Retractions** (:func:`lift_retracted`): the items whose latest ``hash_match`` decision came from
the bank are matched again against the entries still live; those that no longer match get a
``hash_match`` row with action ``none`` (``model_name`` ``pdq:retracted``), committed per bucket
as ``hash_lift/<bank>/v<list version>/b<bucket>``. Model decisions are not touched.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl

from pipelines import storage
from pipelines.errors import BadConfigError, BadInputError
from pipelines.hashes.banks import check_bank_id, list_version, live_entries, read_banks
from pipelines.hashes.codec import from_arrow
from pipelines.hashes.matcher import MIN_QUALITY, Matches, match_hashes
from pipelines.hashes.video import item_matches
from pipelines.lake import Lake, table_exists
from pipelines.policy import Pack, load_default_pack, load_pack, parse_pack, record_pack, recorded
from pipelines.policy.model import BankBinding, Policy
from pipelines.sink import commit_once

SOURCE = "hash_match"
BUCKETS = 16
"""Content-id buckets per (bank version, binding): one decisions commit each."""
FILES_PER_GROUP = 64
"""media_hashes data files read per matching step: memory is one group's hashes (32 B per row + id)."""
RETRACTED = "pdq:retracted"
_META = ("created_at", "region", "markets", "language", "content_type", "content_sha256")


def bucket_of(content_id: pl.Expr) -> pl.Expr:
    """The bucket of each content id (crc32 modulo :data:`BUCKETS`)."""
    return content_id.map_elements(lambda s: zlib.crc32(s.encode()) % BUCKETS, return_dtype=pl.Int64)


def model_version(bank: str, version: int) -> str:
    return f"hash:{bank}@{version}"


def _app_id(bank: str, policy: Policy, binding: BankBinding, version: int, bucket: int) -> str:
    return f"hash_match/{bank}/{policy.id}/t{binding.threshold}/v{version}/b{bucket}"


@dataclass(frozen=True)
class RematchConfig:
    """One re-match of a bank."""

    lake: Lake
    bank: str
    """The bank whose new entries are matched."""
    policy: str | None = None
    """A pack (file or bundled name) whose bindings apply; None: the lake's latest recorded pack."""
    after_version: int | None = None
    """Match only entries added after this list version (None: after what is already matched)."""
    run_id: str | None = None
    media_after: int | None = None
    """Match only the media hashed after this ``media_hashes`` version, against every live entry:
    what a backfill does for the media it just hashed (one commit, no report)."""

    def __post_init__(self) -> None:
        check_bank_id(self.bank)
        if self.after_version is not None and self.after_version < 0:
            raise BadConfigError(f"after_version must be >= 0, got {self.after_version}")


@dataclass
class BindingRun:
    """What the re-match did for one (policy, bank) binding."""

    policy_id: str
    threshold: int
    matched_from: int | None
    """Entries added after this list version were matched; None: every live entry (a full match)."""
    entries: int
    items: int = 0
    """Items matched (before removing those already matched)."""
    allowed: int = 0
    """Items an allow-list bank suppressed."""
    no_metadata: int = 0
    """Items with media hashes but no scores row (no markets to decide in): skipped."""
    already: int = 0
    """Items already matched under this policy."""
    decisions: int = 0
    """Decision rows committed by this run."""


@dataclass
class RematchResult:
    bank: str
    list_version: int
    policy_version: str
    run_id: str
    media_version: int
    stored_hashes: int
    bindings: list[BindingRun] = field(default_factory=list)
    newly: pl.DataFrame = field(default_factory=pl.DataFrame)
    """Newly matched items per (market, policy_id): columns market, policy_id, action, items."""
    report: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        parts = []
        for b in self.bindings:
            scope = "all live entries" if b.matched_from is None else f"entries after v{b.matched_from}"
            parts.append(
                f"{b.policy_id} (distance <= {b.threshold}, {scope}: {b.entries}): {b.items} items matched, "
                f"{b.decisions} decisions written, {b.already} already matched, {b.allowed} allow-listed, "
                f"{b.no_metadata} without scores"
            )
        return (
            f"hash re-match of bank {self.bank}@{self.list_version} under {self.policy_version} against "
            f"{self.stored_hashes} stored hashes (media_hashes v{self.media_version}) in {self.seconds:.1f} s: "
            + "; ".join(parts)
        )


def pack_in_force(lake: Lake, policy: str | None) -> Pack:
    """``policy`` if given, else the lake's most recently recorded pack, else the default pack."""
    if policy is not None:
        return load_pack(policy)
    uri = lake.path("policy_packs")
    if table_exists(uri, lake.storage_options or None):
        packs = pl.read_delta(uri, storage_options=lake.storage_options or None).sort("first_used_at")
        if packs.height:
            row = packs.row(packs.height - 1, named=True)
            return parse_pack(row["text"], source=f"policy_packs:{row['policy_version']}")
    return load_default_pack()


# -- reading the lake ------------------------------------------------------------------------


def _media(lake: Lake) -> tuple[int, list[str]]:
    """(version, data file URIs) of ``media_hashes`` at its latest version."""
    from deltalake import DeltaTable

    uri = lake.path("media_hashes")
    if not table_exists(uri, lake.storage_options or None):
        raise BadInputError(
            f"{uri}: no media hashes yet; a backfill hashes every image and keyframe it scores: run one first"
        )
    dt = DeltaTable(uri, storage_options=lake.storage_options or None)
    return dt.version(), sorted(dt.file_uris())


def _groups(files: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(files), FILES_PER_GROUP):
        yield files[start : start + FILES_PER_GROUP]


def _frame_matches(files: list[str], entries: np.ndarray, threshold: int) -> tuple[pl.DataFrame, int]:
    """Frames of ``media_hashes`` within ``threshold`` of an entry, one group of files at a time.

    Returns (content_id, frame, entry, distance) of matched frames and the number of stored hashes read.
    """
    parts: list[pl.DataFrame] = []
    read = 0
    for group in _groups(files):
        frame = pl.read_parquet(group, columns=["content_id", "frame", "pdq", "quality"])
        read += frame.height
        if not frame.height or not entries.shape[0]:
            continue
        found = match_hashes(
            from_arrow(frame["pdq"].to_arrow()),
            entries,
            threshold=threshold,
            stored_quality=frame["quality"].to_numpy(),
        )
        if len(found):
            hit = frame.select("content_id", "frame")[found.stored]
            parts.append(
                hit.with_columns(pl.Series("entry", found.bank), pl.Series("distance", found.distance, pl.Int32))
            )
    empty = pl.DataFrame(schema={"content_id": pl.String, "frame": pl.Int32, "entry": pl.Int64, "distance": pl.Int32})
    return (pl.concat(parts) if parts else empty), read


def _frames_of(files: list[str], items: list[str], columns: tuple[str, ...]) -> pl.DataFrame:
    """Every stored frame of ``items`` (a few: the matched ones), with ``columns``."""
    if not items:
        return pl.DataFrame(schema={"content_id": pl.String, "frame": pl.Int32, "quality": pl.Int32})
    return (
        pl.scan_parquet(files)
        .select("content_id", "frame", "quality", *columns)
        .filter(pl.col("content_id").is_in(items))
        .unique(["content_id", "frame"], keep="first")
        .sort("content_id", "frame")
        .collect()
    )


def _item_rule(frames: pl.DataFrame, matched: pl.DataFrame) -> pl.DataFrame:
    """vPDQ's rule over ``frames`` (all frames of the candidate items) given the ``matched`` frames.

    Returns content_id, entry (of the smallest distance), distance for the items that match.
    """
    if not matched.height:
        return pl.DataFrame(schema={"content_id": pl.String, "entry": pl.Int64, "distance": pl.Int32})
    best = matched.sort("distance", "entry").group_by("content_id", "frame", maintain_order=True).first()
    idx = frames.with_row_index("__row").join(best, on=["content_id", "frame"], how="inner")
    names, codes = np.unique(frames["content_id"].to_numpy(), return_inverse=True)
    rows = idx["__row"].to_numpy().astype(np.int64)
    hits = Matches(rows, idx["entry"].to_numpy().astype(np.int64), idx["distance"].to_numpy().astype(np.int32))
    items = item_matches(codes.astype(np.int64), frames["quality"].to_numpy(), hits)
    per_item = best.filter(pl.col("content_id").is_in(names[items.item].tolist()))
    return (
        per_item.sort("distance", "entry")
        .group_by("content_id", maintain_order=True)
        .first()
        .select("content_id", "entry", "distance")
    )


def _allowed(lake: Lake, binding: BankBinding, frames: pl.DataFrame) -> set[str]:
    """Items of ``frames`` (with pdq) that an allow-list bank of ``binding`` matches."""
    if not binding.allow or not frames.height:
        return set()
    rows = read_banks(lake).filter(pl.col("bank_id").is_in(list(binding.allow)))
    out: set[str] = set()
    for bank in binding.allow:
        entries = live_entries(rows.filter(pl.col("bank_id") == bank))
        if not entries.height:
            continue
        hits = match_hashes(
            from_arrow(frames["pdq"].to_arrow()),
            from_arrow(entries["pdq"].to_arrow()),
            threshold=binding.threshold,
            stored_quality=frames["quality"].to_numpy(),
        )
        out |= set(frames["content_id"].gather(hits.stored).to_list())
    return out


def _metadata(lake: Lake, items: list[str]) -> pl.DataFrame:
    """The latest ``scores`` row's item metadata per content id (no backlog read)."""
    uri = lake.path("scores")
    if not items or not table_exists(uri, lake.storage_options or None):
        return pl.DataFrame(schema={"content_id": pl.String})
    return (
        pl.scan_delta(uri, storage_options=lake.storage_options or None)
        .filter(pl.col("content_id").is_in(items))
        .select("content_id", "scored_at", *_META)
        .sort("scored_at")
        .group_by("content_id")
        .last()
        .drop("scored_at")
        .collect()
    )


def _latest_hash_rows(lake: Lake, policy_ids: list[str], items: list[str] | None) -> pl.DataFrame:
    """Latest ``hash_match`` decision per (content_id, market, policy_id) of ``policy_ids``."""
    uri = lake.path("decisions")
    if not table_exists(uri, lake.storage_options or None):
        return pl.DataFrame(schema={"content_id": pl.String, "market": pl.String, "policy_id": pl.String})
    scan = pl.scan_delta(uri, storage_options=lake.storage_options or None).filter(
        (pl.col("source") == SOURCE) & pl.col("policy_id").is_in(policy_ids)
    )
    if items is not None:
        scan = scan.filter(pl.col("content_id").is_in(items))
    return (
        scan.sort("decided_at", "model_version", "run_id")
        .group_by("content_id", "market", "policy_id", maintain_order=True)
        .last()
        .collect()
    )


def _done_version(lake: Lake, bank: str, policy: Policy, binding: BankBinding, upto: int) -> int | None:
    """The highest list version <= ``upto`` whose buckets are all committed for this binding."""
    from deltalake import DeltaTable

    uri = lake.path("decisions")
    if not table_exists(uri, lake.storage_options or None):
        return None
    dt = DeltaTable(uri, storage_options=lake.storage_options or None)
    for version in range(upto, 0, -1):
        if all(dt.transaction_version(_app_id(bank, policy, binding, version, b)) is not None for b in range(BUCKETS)):
            return version
    return None


# -- decisions -----------------------------------------------------------------------------


def _expand_markets(meta: pl.DataFrame) -> pl.DataFrame:
    """One row per (item, market): the item's markets, deduplicated; null or empty means [region]."""
    markets = pl.when(pl.col("markets").list.len() > 0).then(pl.col("markets")).otherwise(pl.concat_list("region"))
    return (
        meta.with_columns(markets.fill_null(pl.concat_list("region")).list.unique(maintain_order=True).alias("market"))
        .explode("market")
        .filter(pl.col("market").is_not_null())
    )


def _decision_rows(
    matched: pl.DataFrame,
    policy: Policy,
    binding: BankBinding,
    *,
    pack: Pack,
    bank_version: str,
    run_id: str,
    media_version: int,
) -> pl.DataFrame:
    """Decision rows for ``matched`` (content_id, external_id, distance + item metadata)."""
    rows = _expand_markets(matched)
    if not policy.conditions.empty:
        keep = [policy.conditions.holds(r, m) for r, m in zip(rows["region"], rows["market"], strict=True)]
        rows = rows.filter(pl.Series(keep, dtype=pl.Boolean))
    ext = pl.col("external_id").fill_null("")
    return rows.select(
        "content_id",
        "market",
        pl.lit(policy.id).alias("policy_id"),
        pl.lit(pack.policy_version).alias("policy_version"),
        pl.lit(binding.action).alias("action"),
        *_hash_decision_columns(
            automated="FULLY" if binding.fully_automated else "PARTIALLY",
            run_id=run_id,
            model_name=pl.format("pdq:{}:{}", ext, pl.col("distance")),
            bank_version=bank_version,
            media_version=media_version,
        ),
    )


def _hash_decision_columns(
    *, automated: str, run_id: str, model_name: pl.Expr, bank_version: str, media_version: int
) -> list[pl.Expr | str]:
    """The columns every hash-match decision row shares after its key and action (DECISIONS order)."""
    return [
        pl.lit(None, pl.Float32).alias("score"),
        pl.lit(None, pl.Float32).alias("threshold"),
        pl.lit(automated).alias("automated"),
        pl.lit(SOURCE).alias("source"),
        pl.lit(run_id).alias("run_id"),
        model_name.alias("model_name"),
        pl.lit(bank_version).alias("model_version"),
        pl.lit(media_version, pl.Int64).alias("source_version"),
        "created_at",
        "region",
        "language",
        "content_type",
        "content_sha256",
        bucket_of(pl.col("content_id")).alias("chunk_id"),
    ]


def _commit_buckets(lake: Lake, rows: pl.DataFrame, app_id: str, metadata: dict[str, str]) -> int:
    """Commit ``rows`` per bucket (empty buckets too: they mark the bucket done). Returns rows committed."""
    written = 0
    for b in range(BUCKETS):
        part = rows.filter(pl.col("chunk_id") == b) if rows.height else rows
        part = part.with_columns(pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias("decided_at"))
        if commit_once(
            lake, "decisions", part.to_arrow(), app_id=f"{app_id}/b{b}", metadata=metadata | {"chunk": str(b)}
        ):
            written += part.height
    return written


def rematch_bank(config: RematchConfig) -> RematchResult:
    """Match the bank's entries not matched yet against every stored hash; commit decisions (see module)."""
    t0 = time.perf_counter()
    lake, bank = config.lake, config.bank
    pack = pack_in_force(lake, config.policy)
    bindings = pack.bindings(bank)
    if not bindings:
        bound = ", ".join(f"{b.bank} -> {p.id}" for p, b in pack.bindings()) or "none"
        raise BadConfigError(
            f"pack {pack.policy_version} binds no policy to bank {bank} (its bindings: {bound}); "
            "add a bank binding to a policy (docs/policy-packs.md) and pass it with --policy"
        )
    bank_rows = read_banks(lake, bank)
    version = list_version(bank_rows)
    if version == 0:
        raise BadInputError(
            f"bank {bank} is empty in {lake.path('hash_banks')}; import a list first (batchjobs hashes import)"
        )
    run_id = config.run_id or f"hashes-{uuid.uuid4().hex[:12]}"
    record_pack(lake, pack, run_id=run_id)
    media_version, files = _media(lake)
    if config.media_after is not None:
        from pipelines.deltalog import added_files

        root = lake.path("media_hashes").rstrip("/")
        added = added_files(root, config.media_after, media_version)
        if added is not None:  # None: that log is gone; match every stored hash (same result, more work)
            files = sorted(f"{root}/{a.path}" for a in added)
    bank_version = model_version(bank, version)
    result = RematchResult(bank, version, pack.policy_version, run_id, media_version, 0)
    newly: list[pl.DataFrame] = []
    for policy, binding in bindings:
        if config.media_after is not None:
            done = None  # new media: every live entry
        elif config.after_version is not None:
            done = config.after_version
        else:
            done = _done_version(lake, bank, policy, binding, version)
        entries = live_entries(bank_rows, at=version, after=done)
        run = BindingRun(policy.id, binding.threshold, done, entries.height)
        result.bindings.append(run)
        if done is not None and done >= version:
            continue  # every bucket of the latest list version is committed: nothing new
        matched_frames, read = _frame_matches(files, from_arrow(entries["pdq"].to_arrow()), binding.threshold)
        result.stored_hashes = max(result.stored_hashes, read)
        candidates = matched_frames["content_id"].unique().sort().to_list()
        frames = _frames_of(files, candidates, ("pdq",) if binding.allow else ())
        items = _item_rule(frames, matched_frames)
        run.items = items.height
        allowed = _allowed(lake, binding, frames.filter(pl.col("content_id").is_in(items["content_id"].to_list())))
        run.allowed = len(allowed)
        items = items.filter(~pl.col("content_id").is_in(list(allowed)))
        meta = _metadata(lake, items["content_id"].to_list())
        run.no_metadata = items.height - meta.height
        ext = entries.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("entry"), "external_id")
        matched = items.join(ext, on="entry", how="left").join(meta, on="content_id", how="inner")
        rows = _decision_rows(
            matched, policy, binding, pack=pack, bank_version=bank_version, run_id=run_id, media_version=media_version
        )
        prior = _latest_hash_rows(lake, [policy.id], rows["content_id"].unique().to_list())
        if prior.height:
            live = prior.filter(pl.col("action") != "none").select("content_id", "market", "policy_id")
            keys = ["content_id", "market", "policy_id"]
            run.already = rows.join(live, on=keys, how="semi")["content_id"].n_unique()
            rows = rows.join(live, on=keys, how="anti")
        metadata = {
            "job": "hashes-rematch",
            "run_id": run_id,
            "model_version": bank_version,
            "policy_version": pack.policy_version,
            "source_version": str(media_version),
            "table": "decisions",
        }
        app = f"hash_match/{bank}/{policy.id}/t{binding.threshold}/v{version}"
        if config.media_after is not None:
            # New media of one backfill: one commit named by the media versions it covers.
            stamped = rows.with_columns(pl.lit(datetime.now(UTC)).dt.cast_time_unit("us").alias("decided_at"))
            app_id = f"{app}/media{config.media_after}-{media_version}"
            if rows.height and commit_once(lake, "decisions", stamped.to_arrow(), app_id=app_id, metadata=metadata):
                run.decisions = rows.height
        else:
            run.decisions = _commit_buckets(lake, rows, app, metadata)
        if run.decisions:
            newly.append(
                rows.group_by("market", "policy_id", "action").agg(pl.col("content_id").n_unique().alias("items"))
            )
    result.newly = (
        pl.concat(newly)
        .group_by("market", "policy_id", "action")
        .agg(pl.col("items").sum())
        .sort("policy_id", "market")
        if newly
        else pl.DataFrame(schema={"market": pl.String, "policy_id": pl.String, "action": pl.String, "items": pl.UInt32})
    )
    result.seconds = time.perf_counter() - t0
    if config.media_after is None:
        result.report = _write_report(lake, result)
    return result


def _write_report(lake: Lake, result: RematchResult) -> str:
    """``reports/hash-match-<bank>@<version>-<run id>/report.json``: counts and ids, never hash values."""
    folder = storage.join(lake.reports, f"hash-match-{result.bank}@{result.list_version}-{result.run_id}")
    storage.makedirs(folder)
    body = {
        "bank": result.bank,
        "list_version": result.list_version,
        "policy_version": result.policy_version,
        "run_id": result.run_id,
        "media_hashes_version": result.media_version,
        "stored_hashes": result.stored_hashes,
        "bindings": [vars(b) for b in result.bindings],
        "newly_matched": result.newly.to_dicts(),
        "seconds": round(result.seconds, 3),
    }
    path = storage.join(folder, "report.json")
    storage.write_text(path, json.dumps(body, indent=2, default=str))
    return path


# -- retractions -----------------------------------------------------------------------------


def _binding_in(lake: Lake, policy_version: str, policy_id: str, bank: str, fallback: Pack) -> BankBinding | None:
    """The binding of ``bank`` to ``policy_id`` in the recorded pack ``policy_version`` (else in ``fallback``)."""
    row = recorded(lake, policy_version)
    pack = parse_pack(str(row["text"]), source=f"policy_packs:{policy_version}") if row is not None else fallback
    for p, b in pack.bindings(bank):
        if p.id == policy_id:
            return b
    return None


def lift_retracted(lake: Lake, bank: str, *, policy: str | None = None, run_id: str | None = None) -> int:
    """Lift the ``hash_match`` decisions of ``bank`` whose items no longer match a live entry.

    Each decision is re-checked with the binding (threshold, allow-lists) of the pack version it was
    made under. Returns the number of lifting rows committed (action ``none``; see the module docstring).
    """
    pack = pack_in_force(lake, policy)
    bank_rows = read_banks(lake, bank)
    version = list_version(bank_rows)
    policy_ids = list(dict.fromkeys(p.id for p, _ in pack.bindings(bank)))
    if not policy_ids or version == 0:
        return 0
    run_id = run_id or f"hashes-{uuid.uuid4().hex[:12]}"
    latest = _latest_hash_rows(lake, policy_ids, None)
    mine = (
        latest.filter((pl.col("action") != "none") & pl.col("model_version").str.starts_with(f"hash:{bank}@"))
        if latest.height
        else latest
    )
    if not mine.height:
        return 0
    media_version, files = _media(lake)
    entries = live_entries(bank_rows, at=version)
    keep: set[tuple[str, str, str]] = set()  # (content_id, policy_id, policy_version) still matched
    for pv, pid in mine.select("policy_version", "policy_id").unique().sort("policy_version", "policy_id").rows():
        binding = _binding_in(lake, pv, pid, bank, pack)
        items = mine.filter((pl.col("policy_id") == pid) & (pl.col("policy_version") == pv))["content_id"]
        frames = _frames_of(files, items.unique().to_list(), ("pdq",))
        if binding is None or not frames.height or not entries.height:
            continue
        found = match_hashes(
            from_arrow(frames["pdq"].to_arrow()),
            from_arrow(entries["pdq"].to_arrow()),
            threshold=binding.threshold,
            stored_quality=frames["quality"].to_numpy(),
            min_quality=MIN_QUALITY,
        )
        hits = frames.select("content_id", "frame")[found.stored].with_columns(
            pl.Series("entry", found.bank), pl.Series("distance", found.distance, pl.Int32)
        )
        keep |= {(c, pid, pv) for c in _item_rule(frames, hits)["content_id"].to_list()}
    still = pl.DataFrame(
        sorted(keep),
        schema={"content_id": pl.String, "policy_id": pl.String, "policy_version": pl.String},
        orient="row",
    )
    lifted = mine.join(still, on=["content_id", "policy_id", "policy_version"], how="anti")
    rows = lifted.select(
        "content_id",
        "market",
        "policy_id",
        "policy_version",
        pl.lit("none").alias("action"),
        *_hash_decision_columns(
            automated="FULLY",
            run_id=run_id,
            model_name=pl.lit(RETRACTED),
            bank_version=model_version(bank, version),
            media_version=media_version,
        ),
    )
    metadata = {"job": "hashes-retract", "run_id": run_id, "model_version": model_version(bank, version)}
    return _commit_buckets(lake, rows, f"hash_lift/{bank}/v{version}", metadata)
