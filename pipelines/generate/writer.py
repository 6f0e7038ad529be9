"""Stream generated batches into ``backlog`` and ``ground_truth`` through the lake's sink.

Order and restarts: ground_truth is written first, the backlog last, each in one Delta
commit named by the config's digest. So an existing, non-empty backlog always comes with
its ground truth: a second run refuses to touch it (pick a new --lake). A run killed before
the backlog commit re-runs cleanly with the same options: the ground-truth commit is then
skipped as already done.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from pipelines.errors import BadConfigError
from pipelines.generate import known_rows
from pipelines.generate.badrows import BAD_PREFIX, BAD_ROW_KINDS, make_bad_row
from pipelines.generate.config import GenerateConfig, GenerateSummary
from pipelines.generate.images import image_pool
from pipelines.generate.rows import RowPlan, effective_rates, id_tag, plan_row, render_media, render_text
from pipelines.heads import GROUND_TRUTH_TARGETS
from pipelines.lake import Lake, table_exists
from pipelines.schema import BACKLOG, GROUND_TRUTH
from pipelines.sink import write_stream

Progress = Callable[[int, int], None]
"""Called with (rows written so far, total rows) after each backlog batch."""


# Bad rows per batch at most: 1 in 11 is a 1.2 MB text, so this bounds a batch's memory
# even when --bad-rows is much larger than --rows.
BAD_PER_BATCH = 500


def _n_batches(cfg: GenerateConfig) -> int:
    """Batches of good rows, plus empty-of-good ones when bad rows would overfill them."""
    return max(-(-cfg.rows // cfg.batch_size), -(-cfg.bad_rows // BAD_PER_BATCH))


def plan_batch(cfg: GenerateConfig, b: int) -> list[RowPlan]:
    """The good rows of batch ``b`` (deterministic for the config)."""
    rnd = random.Random(f"trustbatch/plan/{cfg.seed}/{b}")
    rates = effective_rates(cfg.enrich)
    tag = id_tag(cfg.seed)
    lo, hi = b * cfg.batch_size, min(cfg.rows, (b + 1) * cfg.batch_size)
    return [plan_row(rnd, i, cfg, rates, tag) for i in range(lo, hi)]


def _bad_indices(cfg: GenerateConfig, b: int) -> range:
    """Bad row j goes to batch j mod n_batches: spread over the table, not clumped at its end."""
    return range(b, cfg.bad_rows, _n_batches(cfg))


def truth_batch(plans: list[RowPlan]) -> pa.RecordBatch:
    """One ground-truth row per (content_id, target) of every good row.

    ``family`` and ``split`` are the row's, on every target: a scams row's ``hate`` row says
    ``scams/...`` with label False, so false positives can be broken down by family, and a
    row is never in train for one target and held out for another. ``signal`` is where the
    violation is for a true label and ``none`` for a false one. ``cross_border_data`` copies
    the ``personal_data`` family and signal; its label also needs the markets.
    """
    cols: dict[str, list[Any]] = {n: [] for n in GROUND_TRUTH.names}
    for p in plans:
        for target in GROUND_TRUTH_TARGETS:
            head = "personal_data" if target == "cross_border_data" else target
            label = p.cross_border if target == "cross_border_data" else p.positive == head
            cols["content_id"].append(p.content_id)
            cols["policy_id"].append(target)
            cols["label"].append(label)
            cols["family"].append(p.family)
            cols["signal"].append(p.signal if label else "none")
            cols["split"].append(p.split)
    return pa.RecordBatch.from_pydict(cols, schema=GROUND_TRUTH)


def _row(rnd: random.Random, p: RowPlan, cfg: GenerateConfig) -> dict[str, Any]:
    """Render one planned row as a backlog dict."""
    image, frames = render_media(rnd, p, cfg)
    return {
        "content_id": p.content_id,
        "created_at": p.created_us,
        "region": p.region,
        "markets": p.markets,
        "language": p.language,
        "content_type": p.content_type,
        "text": render_text(rnd, p),
        "image": image,
        "frames": frames,
    }


def backlog_batch(
    cfg: GenerateConfig, b: int, plans: list[RowPlan], fallback: dict[str, Any] | None = None
) -> tuple[pa.RecordBatch, Counter[str]]:
    """Render batch ``b``: its good rows, then its share of bad rows. Returns the kinds written.

    ``fallback`` is a good row that duplicates copy when the batch has no good rows of its own.
    """
    rnd = random.Random(f"trustbatch/render/{cfg.seed}/{b}")
    rows = [_row(rnd, p, cfg) for p in plans]
    kinds: Counter[str] = Counter()
    tag = id_tag(cfg.seed)
    for j in _bad_indices(cfg, b):
        kind = BAD_ROW_KINDS[j % len(BAD_ROW_KINDS)]
        # A fresh benign-looking row as the base, so a bad row differs from good ones only
        # in what makes it bad.
        base = _row(rnd, plan_row(rnd, j, cfg, {}, tag), cfg)
        good = rows[rnd.randrange(len(plans))] if plans else fallback
        if good is None:
            raise ValueError(f"batch {b} has no good rows: pass a fallback row for its duplicates")
        image = image_pool(cfg.seed, cfg.images_per_motif)["landscape"][rnd.randrange(cfg.images_per_motif)]
        rows.append(make_bad_row(kind, f"{BAD_PREFIX}{kind}-{tag}-{j:08d}", base, good, image, rnd))
        kinds[kind] += 1
    cols = {n: [r[n] for r in rows] for n in BACKLOG.names}
    return pa.RecordBatch.from_pydict(cols, schema=BACKLOG), kinds


def _refuse_existing(lake: Lake, app_id: str) -> None:
    from deltalake import DeltaTable

    uri = lake.path("backlog")
    # Version 0 is the empty table the sink creates before its first append: a run killed
    # between the two left it; anything later is data we must not touch.
    if table_exists(uri) and DeltaTable(uri).version() > 0:
        raise BadConfigError(f"{uri} already exists; nothing was changed: pick a new --lake to generate into")
    gt = lake.path("ground_truth")
    if table_exists(gt):
        dt = DeltaTable(gt)
        if dt.version() > 0 and dt.transaction_version(app_id) is None:
            raise BadConfigError(
                f"{gt} already holds labels of another generation; nothing was changed: pick a new --lake"
            )


def generate_backlog(lake: Lake, config: GenerateConfig, *, progress: Progress | None = None) -> GenerateSummary:
    """Generate ``config.rows`` good rows (+ bad rows) into ``lake``'s backlog and ground_truth.

    Streams batch by batch, so memory does not grow with the number of rows. Raises
    BadConfigError when the lake already has a backlog.
    """
    t0 = time.perf_counter()
    app_id = f"generate-{config.digest()}"
    _refuse_existing(lake, app_id)
    meta = {"job": "generate", "config_digest": config.digest(), "seed": str(config.seed)}
    positives: Counter[str] = Counter({t: 0 for t in GROUND_TRUTH_TARGETS})
    heldout = 0

    def truth() -> Iterator[pa.RecordBatch]:
        nonlocal heldout
        for b in range(_n_batches(config)):
            plans = plan_batch(config, b)
            for p in plans:
                if p.positive is not None:
                    positives[p.positive] += 1
                positives["cross_border_data"] += p.cross_border
                heldout += p.split == "heldout"
            if plans:  # batches past the good rows hold only bad rows, which have no labels
                yield truth_batch(plans)
        if config.known:
            yield known_rows.truth_batch(config)

    kinds: Counter[str] = Counter({k: 0 for k in BAD_ROW_KINDS})
    counts = {"known": 0}

    def backlog() -> Iterator[pa.RecordBatch]:
        written = 0
        first: dict[str, Any] | None = None
        for b in range(_n_batches(config)):
            batch, k = backlog_batch(config, b, plan_batch(config, b), first)
            first = first or batch.slice(0, 1).to_pylist()[0]
            kinds.update(k)
            written += batch.num_rows
            yield batch
            if progress is not None:
                progress(written, config.rows + config.bad_rows)
        if config.known:
            known = known_rows.backlog_batch(config)
            counts["known"] = known.num_rows
            yield known

    gt_done = not write_stream(
        lake, "ground_truth", pa.RecordBatchReader.from_batches(GROUND_TRUTH, truth()), app_id=app_id, metadata=meta
    )
    if gt_done:  # resumed after a crash: count labels without writing them again
        for _ in truth():
            pass
    write_stream(lake, "backlog", pa.RecordBatchReader.from_batches(BACKLOG, backlog()), app_id=app_id, metadata=meta)
    from deltalake import DeltaTable

    banks = known_rows.write_bank_files(lake, config) if config.known else {}
    if config.known and not counts["known"]:  # resumed: the backlog commit was already there
        counts["known"] = known_rows.row_count(config)
    for target, n in known_rows.positives(config).items():
        positives[target] += n

    return GenerateSummary(
        rows=config.rows,
        bad_rows=config.bad_rows,
        bad_row_kinds=dict(kinds),
        positives=dict(positives),
        heldout_rows=heldout,
        backlog_uri=lake.path("backlog"),
        ground_truth_uri=lake.path("ground_truth"),
        backlog_version=DeltaTable(lake.path("backlog")).version(),
        seconds=time.perf_counter() - t0,
        known_rows=counts["known"],
        known_banks=banks,
    )
