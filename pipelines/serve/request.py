"""Parse and validate a ``POST /v1/score`` body into backlog-shaped rows, without Ray.

The online endpoint must score exactly what the backfill would score for the same item, so
a request is turned into the backlog row shape (``pipelines.schema.BACKLOG`` columns; media
base64 → bytes) and then goes through the same preprocessor and decision code. Everything a
client can get wrong is caught here and becomes a :class:`RequestError` with an HTTP status
and a message naming the item and the field: never a 500, never a dead replica.
Media that is valid base64 but not a decodable image is left to the model's preprocessor
(the same rule the backfill dead-letters by), which the app turns into a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.markets import ALL_MARKETS
from pipelines.schema import SHORT_CONTENT_TYPES

FIELDS: tuple[str, ...] = (
    "content_id", "created_at", "region", "markets", "language", "content_type", "text", "image", "frames",
)  # fmt: skip
REQUIRED: tuple[str, ...] = ("content_id", "region", "content_type")
MAX_ID_CHARS = 512
_KNOWN_MARKETS = frozenset(ALL_MARKETS)


class RequestError(Exception):
    """A client error: ``status`` is the HTTP status (400, 401, 413, 422), ``message`` says what to fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Request limits.

    max_items: items per request (a list longer than this is 422: split it).
    max_frames: keyframes per item (the preprocessor samples a few; more is wasted upload).
    """

    max_items: int = 256
    max_frames: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.max_items <= 100_000:
            raise ValueError(f"max_items must be in [1, 100000], got {self.max_items}")
        if not 1 <= self.max_frames <= 10_000:
            raise ValueError(f"max_frames must be in [1, 10000], got {self.max_frames}")


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(422, f"{where}: expected a base64 string, got {type(value).__name__}")
    try:
        # validate=True refuses characters outside the alphabet instead of silently dropping them.
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(422, f"{where}: not valid base64 ({exc})") from None


def _str(item: dict[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise RequestError(422, f"{where}: field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise RequestError(422, f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON may escape lone surrogates (\ud800); they are not text and Arrow cannot store them.
        raise RequestError(422, f"{where}: field '{name}' is not valid Unicode (lone surrogate escape)") from None
    return value


def _market(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in _KNOWN_MARKETS:
        raise RequestError(
            422, f"{where}: unknown market {value!r}; known markets are ISO 3166-1 codes: {', '.join(ALL_MARKETS)}"
        )
    return value


def _created_at(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise RequestError(422, f"{where}: field 'created_at' must be an ISO 8601 string")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(422, f"{where}: field 'created_at' is not ISO 8601: {value!r}") from None
    if ts.tzinfo is None:
        raise RequestError(422, f"{where}: field 'created_at' needs a time zone (e.g. 2026-01-31T00:00:00Z)")
    return ts.astimezone(UTC)


def parse_item(item: Any, index: int, *, limits: Limits, now: datetime) -> dict[str, Any]:
    """One JSON item -> one backlog-shaped row (``FIELDS`` as keys, media as bytes)."""
    where = f"item {index}"
    if not isinstance(item, dict):
        raise RequestError(422, f"{where}: expected a JSON object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise RequestError(422, f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    content_id = _str(item, "content_id", where, required=True)
    if not content_id or len(content_id) > MAX_ID_CHARS:
        raise RequestError(422, f"{where}: 'content_id' must be 1 to {MAX_ID_CHARS} characters")
    where = f"item {index} ({content_id})"
    region = _market(_str(item, "region", where, required=True), f"{where}: region")
    markets_raw = item.get("markets")
    if markets_raw is None:
        markets = [region]
    elif isinstance(markets_raw, list) and markets_raw:
        # Deduplicated here (decide would do it anyway): a list of 100k "DE" costs nothing further.
        markets = list(dict.fromkeys(_market(m, f"{where}: markets") for m in markets_raw))
    else:
        raise RequestError(422, f"{where}: 'markets' must be a non-empty list of market codes (or omitted)")
    ctype = (_str(item, "content_type", where, required=True) or "").upper().removeprefix("CONTENT_TYPE_")
    if ctype not in SHORT_CONTENT_TYPES:
        raise RequestError(
            422, f"{where}: unknown content_type {item['content_type']!r}; one of {', '.join(SHORT_CONTENT_TYPES)}"
        )
    image = item.get("image")
    frames = item.get("frames")
    if frames is not None and (not isinstance(frames, list) or len(frames) > limits.max_frames):
        raise RequestError(422, f"{where}: 'frames' must be a list of at most {limits.max_frames} base64 images")
    return {
        "content_id": content_id,
        "created_at": _created_at(item.get("created_at"), where, now),
        "region": region,
        "markets": markets,
        "language": _str(item, "language", where, required=False),
        "content_type": ctype,
        "text": _str(item, "text", where, required=False),
        "image": None if image is None else _b64(image, f"{where}: image"),
        "frames": None if frames is None else [_b64(f, f"{where}: frames[{i}]") for i, f in enumerate(frames)],
    }


def parse_body(body: bytes, *, limits: Limits | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """A request body (one item, a list, or ``{"items": [...]}``) -> backlog-shaped rows."""
    limits = limits or Limits()
    now = now or datetime.now(UTC)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    if isinstance(data, dict) and set(data) == {"items"}:
        data = data["items"]
    items = data if isinstance(data, list) else [data]
    if not items:
        raise RequestError(422, "no items: send one item object or a non-empty list of them")
    if len(items) > limits.max_items:
        raise RequestError(422, f"{len(items)} items > limit {limits.max_items} per request; split the request")
    return [parse_item(item, i, limits=limits, now=now) for i, item in enumerate(items)]
