"""Arrow schemas of every lake table (contract: see docs/architecture.md, "The lake").

The schemas here are the single source of truth: the generator, the sinks, the sweep and
the audit import them, and :func:`validate_backlog_schema` tells a user exactly which
column of their own backlog is missing or mistyped.
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.errors import BadInputError

TS = pa.timestamp("us", tz="UTC")

# Content types of the DSA Transparency Database (`content_type` enumeration).
CONTENT_TYPES: tuple[str, ...] = (
    "CONTENT_TYPE_APP", "CONTENT_TYPE_AUDIO", "CONTENT_TYPE_IMAGE",
    "CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_SYNTHETIC_MEDIA", "CONTENT_TYPE_TEXT",
    "CONTENT_TYPE_VIDEO", "CONTENT_TYPE_OTHER",
)  # fmt: skip
# The backlog stores the short form (TEXT, IMAGE, VIDEO, ...).
SHORT_CONTENT_TYPES: tuple[str, ...] = tuple(c.removeprefix("CONTENT_TYPE_") for c in CONTENT_TYPES)

BACKLOG = pa.schema(
    [
        # Nullable at the Arrow level so that a bad row (null id) can be read and
        # dead-lettered instead of failing the whole file; scoring requires it.
        pa.field("content_id", pa.string()),
        pa.field("created_at", TS),
        pa.field("region", pa.string()),
        pa.field("markets", pa.list_(pa.string())),
        pa.field("language", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("text", pa.string()),
        pa.field("image", pa.binary()),
        pa.field("frames", pa.list_(pa.binary())),
    ]
)

GROUND_TRUTH = pa.schema(
    [
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("label", pa.bool_(), nullable=False),
        # Template family of the violation (or of the benign filler) and where its signal
        # is: "text", "image", "both" (only the combination violates) or "none".
        pa.field("family", pa.string(), nullable=False),
        pa.field("signal", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # "train" | "heldout"
    ]
)

_LINEAGE = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("source_version", pa.int64(), nullable=False),
]

SCORES = pa.schema(
    [
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        *_LINEAGE,
        pa.field("scored_at", TS, nullable=False),
        # Item metadata copied from the backlog so that sweeps re-decide and audits
        # aggregate from this table alone, without reading media.
        pa.field("created_at", TS),
        pa.field("region", pa.string()),
        pa.field("markets", pa.list_(pa.string())),
        pa.field("language", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("content_sha256", pa.string()),
        # The backfill unit (per job) that committed the row; see docs/architecture.md.
        pa.field("chunk_id", pa.int64(), nullable=False),
        # Where the scored backlog row was read: the data file (as the Delta log names it) and
        # the row's index in that file. A re-run tells "this very row is done" from "another row
        # with this id" by them. Null for rows written before wave 2 and for online requests.
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
    ]
)

AUTOMATED = ("FULLY", "PARTIALLY", "NOT_AUTOMATED")
# Decision sources (contract). The current decision of a key is the latest decision of the
# highest-precedence source present: appeal > human_review > hash_match > model
# (pipelines/current.py holds that one rule).
SOURCES = ("model", "hash_match", "human_review", "appeal")
ACTIONS = ("none", "review", "label", "demote", "age_restrict", "remove")

DECISIONS = pa.schema(
    [
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("market", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("score", pa.float32()),
        pa.field("threshold", pa.float32()),
        pa.field("automated", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        *_LINEAGE,
        pa.field("decided_at", TS, nullable=False),
        pa.field("created_at", TS),
        pa.field("region", pa.string()),
        pa.field("language", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("content_sha256", pa.string()),
        pa.field("chunk_id", pa.int64(), nullable=False),
    ]
)

# The current decision for a key is its most recently committed row: latest ``decided_at``
# (the commit time); rows of one commit tie on it and are ordered by the rest, so every
# reader (sweep, audit, serve) picks the same row.
DECISION_KEY: tuple[str, ...] = ("content_id", "market", "policy_id")
CURRENT_ORDER: tuple[str, ...] = ("decided_at", "policy_version", "model_version", "run_id")

DEAD_LETTERS = pa.schema(
    [
        pa.field("content_id", pa.string()),
        # Where the row came from when it has no usable id: "<table>@v<version>#<row>".
        pa.field("locator", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error_class", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("source_version", pa.int64(), nullable=False),
        pa.field("failed_at", TS, nullable=False),
        pa.field("chunk_id", pa.int64(), nullable=False),
        pa.field("source_file", pa.string()),
        pa.field("source_row", pa.int64()),
    ]
)

# One row per backfill segment a (backlog, model version, pack version) started or finished.
# A segment covers the backlog's data changes in versions (from_version, to_version]
# (from_version null: the whole snapshot at to_version). The latest finished to_version is the
# watermark the next scheduled run starts from; a started segment with no finished row is
# resumed, unit for unit, by the next run.
BACKFILL_PROGRESS = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("job", pa.string(), nullable=False),
        pa.field("from_version", pa.int64()),
        pa.field("to_version", pa.int64(), nullable=False),
        pa.field("units", pa.int64(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("chunk_rows", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # "started" | "finished"
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("at", TS, nullable=False),
    ]
)

POLICY_PACKS = pa.schema(
    [
        pa.field("pack_id", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("first_used_at", TS, nullable=False),
        pa.field("first_run_id", pa.string(), nullable=False),
    ]
)

REVIEW_SAMPLES = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("stratum", pa.string(), nullable=False),
        pa.field("inclusion_prob", pa.float64(), nullable=False),
        pa.field("stratum_size", pa.int64(), nullable=False),
        pa.field("sampled_at", TS, nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        # One id per draw (`batchjobs review sample`): audits estimate from one draw at a time,
        # so strata sizes and inclusion probabilities always belong to the same design.
        pa.field("sample_run", pa.string(), nullable=False),
    ]
)

REVIEW_LABELS = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("label", pa.bool_(), nullable=False),
        pa.field("reviewer", pa.string(), nullable=False),
        pa.field("labeled_at", TS, nullable=False),
    ]
)

# One row per decoded image or keyframe of a backfilled item (contract name). Keyed by
# (content_id, frame), not by model version: media is hashed once, whatever model scores it.
# frame is -1 for an item's image and 0.. for its keyframes. Hashes never leave the lake:
# reports and statements cite content ids only.
MEDIA_HASHES = pa.schema(
    [
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("pdq", pa.binary(32), nullable=False),
        pa.field("quality", pa.int32(), nullable=False),
        pa.field("content_sha256", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_version", pa.int64(), nullable=False),
        pa.field("hashed_at", TS, nullable=False),
    ]
)

# Hash lists ("banks"), one row per entry and list version (contract name). An entry is
# retracted by a later row with retracted=True; the bank's list version counts its imports.
HASH_BANKS = pa.schema(
    [
        pa.field("bank_id", pa.string(), nullable=False),
        pa.field("pdq", pa.binary(32), nullable=False),
        pa.field("external_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("added_at", TS, nullable=False),
        pa.field("list_version", pa.int64(), nullable=False),
        pa.field("retracted", pa.bool_(), nullable=False),
        pa.field("import_sha256", pa.string(), nullable=False),
    ]
)

# Internal complaints (DSA Art. 20), one row per complaint (contract name).
COMPLAINT_BASES = (
    "visibility",
    "provision",
    "account",
    "monetisation",
    "notice_no_action",
    "trusted_flagger_no_action",
)
COMPLAINT_OUTCOMES = ("upheld", "partially_reversed", "reversed", "omitted")
COMPLAINTS = pa.schema(
    [
        pa.field("complaint_id", pa.string(), nullable=False),
        pa.field("content_id", pa.string(), nullable=False),
        pa.field("market", pa.string(), nullable=False),
        pa.field("policy_id", pa.string(), nullable=False),
        pa.field("lodged_at", TS, nullable=False),
        pa.field("basis", pa.string(), nullable=False),
        pa.field("outcome", pa.string()),  # null while pending
        pa.field("resolved_at", TS),
        pa.field("new_action", pa.string()),
        pa.field("import_sha256", pa.string(), nullable=False),
        pa.field("ingested_at", TS, nullable=False),
    ]
)

# Lake folder name -> schema. `backlog` is only the default home of input content.
TABLES: dict[str, pa.Schema] = {
    "backlog": BACKLOG,
    "ground_truth": GROUND_TRUTH,
    "scores": SCORES,
    "decisions": DECISIONS,
    "dead_letters": DEAD_LETTERS,
    "backfill_progress": BACKFILL_PROGRESS,
    "policy_packs": POLICY_PACKS,
    "review_samples": REVIEW_SAMPLES,
    "review_labels": REVIEW_LABELS,
    "media_hashes": MEDIA_HASHES,
    "hash_banks": HASH_BANKS,
    "complaints": COMPLAINTS,
}

# Columns a user's backlog must have; `markets`, `frames` and `image` may be absent
# (markets defaults to [region]; media columns default to null).
_REQUIRED_BACKLOG = ("content_id", "created_at", "region", "language", "content_type", "text")


def _type_ok(actual: pa.DataType, expected: pa.DataType) -> bool:
    if actual.equals(expected):
        return True
    # Accept the common equivalents a user's writer produces: large strings and binaries,
    # large lists, and timestamps of any unit as long as they carry a time zone.
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_binary(expected):
        return pa.types.is_binary(actual) or pa.types.is_large_binary(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) and actual.tz is not None
    if pa.types.is_list(expected) and (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
        return _type_ok(actual.value_type, expected.value_type)
    return False


def schema_problems(actual: pa.Schema, expected: pa.Schema, *, required: tuple[str, ...] | None = None) -> list[str]:
    """One line per missing or mistyped column of ``actual`` against ``expected``."""
    need = required if required is not None else tuple(expected.names)
    problems = []
    for field in expected:
        if field.name not in actual.names:
            if field.name in need:
                problems.append(f"column '{field.name}' is missing (expected {field.type})")
            continue
        got = actual.field(field.name).type
        if not _type_ok(got, field.type):
            problems.append(f"column '{field.name}' has type {got}, expected {field.type}")
    return problems


def validate_backlog_schema(actual: pa.Schema, *, where: str = "backlog") -> None:
    """Raise :class:`BadInputError` naming every missing or mistyped backlog column."""
    problems = schema_problems(actual, BACKLOG, required=_REQUIRED_BACKLOG)
    if problems:
        raise BadInputError(
            f"{where}: " + "; ".join(problems) + " (see docs/architecture.md, 'The lake', for the backlog columns)"
        )
