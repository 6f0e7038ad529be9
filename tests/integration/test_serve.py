"""The online endpoint on the session's Ray: same scores and actions as the backfill, hardened edges."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.lake import Lake
from pipelines.serve import LogConfig, ServeConfig
from tests.integration.helpers import TINY_URI, make_lake, read

TOKEN = "integration-test-token-0123456789"
MAX_BODY = 256 * 1024
N_ITEMS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """A tiny loopback HTTP client (no third-party dependency)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def call(
        self, method: str, path: str, body: bytes | None = None, *, token: str | None = TOKEN, **headers: str
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        hdrs = {"Content-Type": "application/json", **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except json.JSONDecodeError:
            return resp.status, raw.decode(errors="replace")

    def score(self, payload: object, **kw: Any) -> tuple[int, Any]:
        return self.call("POST", "/v1/score", json.dumps(payload).encode(), **kw)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, ray_cluster: str) -> Lake:
    """A small generated lake after one backfill with the tiny model and the default pack."""
    from pipelines.backfill import BackfillConfig, run_backfill

    lake = make_lake(tmp_path_factory.mktemp("serve") / "lake", rows=40)
    run_backfill(BackfillConfig(lake=lake, model_uri=TINY_URI, chunk_rows=20), ray_address=ray_cluster)
    return lake


@pytest.fixture(scope="module")
def client(lake: Lake, ray_cluster: str) -> Iterator[Client]:
    from ray import serve

    from pipelines.serve.server import start, stop

    config = ServeConfig(
        lake=lake,
        model_uri=TINY_URI,
        port=free_port(),
        token=TOKEN,
        max_body_bytes=MAX_BODY,
        replica_cpus=0.5,
        log_decisions=True,
        log=LogConfig(max_rows=10_000, max_seconds=0.5),
    )
    url = start(config, run_id="serve-integration", ray_address=ray_cluster)
    c = Client(config.port)
    deadline = time.monotonic() + 60
    while c.call("GET", "/healthz")[0] != 200:
        assert time.monotonic() < deadline, f"{url}/healthz never answered"
        time.sleep(0.2)
    try:
        yield c
    finally:
        stop()
        serve.shutdown()  # the Serve app and its proxies, not the session's Ray


def as_request(row: dict[str, Any]) -> dict[str, Any]:
    """A backlog row as a client would send it (media base64, time ISO 8601)."""
    out = {k: row[k] for k in ("content_id", "region", "markets", "language", "content_type", "text")}
    out["created_at"] = row["created_at"].isoformat() if isinstance(row["created_at"], datetime) else None
    out["image"] = base64.b64encode(row["image"]).decode() if row["image"] is not None else None
    out["frames"] = [base64.b64encode(f).decode() for f in row["frames"]] if row["frames"] is not None else None
    return out


def test_online_matches_backfill(lake: Lake, client: Client) -> None:
    scores = read(lake, "scores")
    decisions = read(lake, "decisions")
    backlog = read(lake, "backlog")
    # Mixed media: prefer items with images and frames, then text.
    ids = scores["content_id"].unique().sort().to_list()
    picked = backlog.filter(pl.col("content_id").is_in(ids)).sort(
        pl.col("frames").is_null(), pl.col("image").is_null(), "content_id"
    )
    rows = picked.head(N_ITEMS).to_dicts()
    assert len(rows) == N_ITEMS
    status, body = client.score([as_request(r) for r in rows])
    assert status == 200, body
    model_version = scores["model_version"][0]
    assert body["model"] == {"name": "tiny", "version": model_version}
    assert body["policy_version"] == decisions["policy_version"][0]
    assert [i["content_id"] for i in body["items"]] == [r["content_id"] for r in rows]
    n_scores = n_actions = 0
    for item in body["items"]:
        cid = item["content_id"]
        want = scores.filter(pl.col("content_id") == cid)
        assert set(item["scores"]) == set(want["policy_id"].to_list())
        for policy_id, score in zip(want["policy_id"], want["score"], strict=True):
            assert abs(item["scores"][policy_id] - score) <= 1e-4, (cid, policy_id)
            n_scores += 1
        want_d = decisions.filter(pl.col("content_id") == cid)
        got = {(m, p): a for m, per in item["actions"].items() for p, a in per.items()}
        assert got == {(m, p): a for m, p, a in want_d.select("market", "policy_id", "action").iter_rows()}, cid
        n_actions += len(got)
    assert n_scores >= N_ITEMS and n_actions >= N_ITEMS
    # Same item, one at a time: same answer (batching does not change scores).
    status, one = client.score(as_request(rows[0]))
    assert status == 200 and one["items"][0] == body["items"][0]


def test_policies(client: Client) -> None:
    status, body = client.call("GET", "/v1/policies")
    assert status == 200 and body["model"]["name"] == "tiny"
    assert {p["id"] for p in body["policies"]} >= {"hate", "scams"}


def item(cid: str = "online-1", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "content_id": cid,
        "region": "DE",
        "markets": ["DE", "US"],
        "language": "en",
        "content_type": "TEXT",
        "text": "win a prize now, send your password",
    }
    base.update(over)
    return base


def test_auth(client: Client) -> None:
    status, body = client.score(item(), token=None)
    assert status == 401 and "Authorization" in body["error"]
    status, body = client.score(item(), token="wrong-token-0123456789abcdef")
    assert status == 401 and "invalid token" in body["error"]
    status, body = client.call("GET", "/v1/policies", token=None)
    assert status == 401


def test_bad_requests_are_4xx_and_the_server_lives(client: Client) -> None:
    bad_png = base64.b64encode(b"\x89PNG\r\n\x1a\n definitely not a png").decode()
    cases: list[tuple[bytes, int, str]] = [
        (b"x" * (MAX_BODY + 1), 413, "limit"),
        (b"{not json", 400, "malformed JSON"),
        (json.dumps(item(image="@@not-base64@@", content_type="IMAGE")).encode(), 422, "base64"),
        (json.dumps(item(image=bad_png, content_type="IMAGE", text=None)).encode(), 422, "ImageDecodeError"),
        (json.dumps(item(markets=["DE", "ATLANTIS"])).encode(), 422, "unknown market"),
        (json.dumps([item("ok"), item("empty", text="")]).encode(), 422, "EmptyContent"),
        (b"[" * 50_000 + b"]" * 50_000, 400, "nested too deeply"),
        (json.dumps(item(text="\ud800")).encode(), 422, "lone surrogate"),
        (json.dumps(item(content_type="PODCAST")).encode(), 422, "content_type"),
    ]
    for raw, want, words in cases:
        status, body = client.call("POST", "/v1/score", raw)
        assert status == want, (want, body)
        assert isinstance(body, dict) and words in body["error"], body
    # Oversized without a Content-Length (chunked): refused while streaming.
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)
    chunks = (b"[" + b" " * 65536 for _ in range(8))
    conn.request("POST", "/v1/score", body=chunks, headers={"Authorization": f"Bearer {TOKEN}"}, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()
    status, body = client.call("GET", "/healthz", token=None)
    assert (status, body) == (200, {"status": "ok"})
    status, body = client.score(item("after-errors"))
    assert status == 200 and body["items"][0]["content_id"] == "after-errors"


def test_decisions_logged_in_micro_batches(lake: Lake, client: Client) -> None:
    before = _serve_commits(lake)
    ids = [f"logged-{i}" for i in range(8)]
    for cid in ids:  # eight separate requests
        assert client.score(item(cid))[0] == 200
    deadline = time.monotonic() + 30
    while True:
        logged = read(lake, "decisions").filter(pl.col("content_id").is_in(ids))
        if logged["content_id"].n_unique() == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert logged["content_id"].n_unique() == len(ids)
    assert set(logged["run_id"].to_list()) == {"serve-integration"}
    assert logged.select("content_id", "market", "policy_id").is_duplicated().sum() == 0
    assert set(logged["market"].to_list()) == {"DE", "US"}
    commits = _serve_commits(lake) - before
    assert 1 <= commits < len(ids), f"{commits} commits for {len(ids)} requests"


def _serve_commits(lake: Lake) -> int:
    n = 0
    for f in (Path(lake.path("decisions")) / "_delta_log").glob("*.json"):
        n += '"app_id":"serve-' in f.read_text().replace(" ", "")
    return n
