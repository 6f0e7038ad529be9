"""Online request validation, auth and config, without Ray: every client mistake is a 4xx with a message."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.errors import BadConfigError
from pipelines.lake import Lake
from pipelines.serve import Limits, RequestError, ServeConfig, check_bearer, load_token, parse_body
from tests.unit.model_rows import png

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def item(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "content_id": "c1",
        "region": "DE",
        "markets": ["DE", "FR", "US"],
        "language": "de",
        "content_type": "IMAGE",
        "text": "hallo",
        "image": base64.b64encode(png()).decode(),
    }
    base.update(over)
    return base


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_one_item_becomes_a_backlog_row_with_bytes() -> None:
    (row,) = parse_body(body(item()), now=NOW)
    assert row["image"] == png() and row["frames"] is None
    assert row["markets"] == ["DE", "FR", "US"] and row["created_at"] == NOW
    assert row["content_type"] == "IMAGE"


def test_list_and_items_envelope_and_defaults() -> None:
    rows = parse_body(body([item(content_id="a"), item(content_id="b", markets=None, image=None)]), now=NOW)
    assert [r["content_id"] for r in rows] == ["a", "b"]
    assert rows[1]["markets"] == ["DE"] and rows[1]["image"] is None
    rows = parse_body(body({"items": [item(frames=[base64.b64encode(png()).decode()])]}), now=NOW)
    assert rows[0]["frames"] == [png()]
    (row,) = parse_body(body(item(content_type="CONTENT_TYPE_TEXT", created_at="2026-01-02T03:04:05Z")))
    assert row["content_type"] == "TEXT" and row["created_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (body([]), 422, "no items"),
        (body(42), 422, "expected a JSON object"),
        (body(item(image="!!!not base64!!!")), 422, "image: not valid base64"),
        (body(item(image=12)), 422, "expected a base64 string"),
        (body(item(frames=["aGk=", "%%%"])), 422, "frames[1]: not valid base64"),
        (body(item(frames="aGk=")), 422, "'frames' must be a list"),
        (body(item(markets=["DE", "XX"])), 422, "unknown market 'XX'"),
        (body(item(markets=[])), 422, "'markets' must be a non-empty list"),
        (body(item(region="EU")), 422, "region: unknown market 'EU'"),
        (body(item(content_type="PODCAST")), 422, "unknown content_type"),
        (body(item(content_id="")), 422, "content_id"),
        (body(item(content_id=None)), 422, "'content_id' is required"),
        (body(item(text=5)), 422, "'text' must be a string"),
        (body(item(colour="red")), 422, "unknown field(s) colour"),
        (body(item(created_at="yesterday")), 422, "not ISO 8601"),
        (body(item(created_at="2026-01-01T00:00:00")), 422, "time zone"),
        (body([item()] * 3), 422, "3 items > limit 2"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"content_id": "c1", "region": "DE", "content_type": "TEXT", "text": "\\ud800"}', 422, "lone surrogate"),
    ],
)
def test_malformed_requests_are_4xx_with_a_message(raw: bytes, status: int, words: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_body(raw, limits=Limits(max_items=2), now=NOW)
    assert err.value.status == status
    assert words in err.value.message


def test_markets_are_deduplicated() -> None:
    (row,) = parse_body(body(item(markets=["DE"] * 1000 + ["FR", "DE"])), now=NOW)
    assert row["markets"] == ["DE", "FR"]


def test_error_names_the_item() -> None:
    with pytest.raises(RequestError, match=r"item 1 \(bad\): markets: unknown market"):
        parse_body(body([item(), item(content_id="bad", markets=["ZZ"])]), now=NOW)


def test_bearer_check() -> None:
    token = "s3cret-token-0123456789"
    check_bearer(f"Bearer {token}", token)
    check_bearer(f"bearer {token}", token)
    check_bearer(None, None)  # auth off
    for header, words in [
        (None, "missing Authorization"),
        ("", "missing Authorization"),
        (f"Basic {token}", "Bearer"),
        ("Bearer ", "Bearer"),
        ("Bearer wrong-token-0123456789", "invalid token"),
        (f"Bearer {token}x", "invalid token"),
    ]:
        with pytest.raises(RequestError, match=words) as err:
            check_bearer(header, token)
        assert err.value.status == 401


def test_load_token(tmp_path: Path) -> None:
    assert load_token(env={}) is None
    assert load_token(env={"BATCHJOBS_TOKEN": " abcdefghijklmnopq \n"}) == "abcdefghijklmnopq"
    f = tmp_path / "token"
    f.write_text("from-the-file-0123456789\n")
    assert load_token(token_file=str(f), env={"BATCHJOBS_TOKEN": "ignored-0123456789"}) == "from-the-file-0123456789"
    with pytest.raises(BadConfigError, match="at least 16"):
        load_token(env={"BATCHJOBS_TOKEN": "short"})
    with pytest.raises(BadConfigError, match="cannot read"):
        load_token(token_file=str(tmp_path / "missing"))


def test_config_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    with pytest.raises(BadConfigError, match="no API token"):
        ServeConfig(lake=lake)
    assert ServeConfig(lake=lake, insecure_no_auth=True).token is None
    assert "tok" not in repr(ServeConfig(lake=lake, token="tok-0123456789abcdef"))  # never logged
    with pytest.raises(BadConfigError, match="max-body-bytes"):
        ServeConfig(lake=lake, token="t" * 16, max_body_bytes=10)
    with pytest.raises(BadConfigError, match="port"):
        ServeConfig(lake=lake, token="t" * 16, port=70000)
