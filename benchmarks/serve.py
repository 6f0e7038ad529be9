"""Online endpoint: requests/s and latency at concurrency 1, 8, 32, against batch throughput.

Starts a local Ray and ``batchjobs serve``'s application on 127.0.0.1 (a free port) with the
tiny model in a fresh generated lake (or ``--lake``/``--model`` of your own), then drives it
from a loopback load generator: for each concurrency level, that many client threads with
keep-alive connections send one-item requests until ``--requests`` have been sent or
``--seconds`` have passed, whichever comes first. The baseline, measured in the same run on
the same replica, is batch throughput: items/s when the same items arrive as list requests of
``--batch-items``. Progress goes to stderr; ONE JSON line is printed last.

    .venv/bin/python benchmarks/serve.py --requests 400 --seconds 20

The client threads share the machine with the server: on a 2-core box the figures are a
floor for the server, not its ceiling.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import secrets
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from _machine import cpu_name  # benchmarks/ is on sys.path when run as a script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _payloads(lake_root: str, n: int) -> list[dict[str, Any]]:
    import polars as pl

    rows = pl.read_delta(f"{lake_root}/backlog").filter(pl.col("content_id").is_not_null()).head(n).to_dicts()
    out = []
    for r in rows:
        item = {k: r[k] for k in ("content_id", "region", "markets", "language", "content_type", "text")}
        item["created_at"] = r["created_at"].isoformat() if isinstance(r["created_at"], datetime) else None
        item["image"] = base64.b64encode(r["image"]).decode() if r.get("image") is not None else None
        item["frames"] = [base64.b64encode(f).decode() for f in r["frames"]] if r.get("frames") is not None else None
        out.append(item)
    return out


class _Conn:
    """One keep-alive loopback connection; reconnects after an error."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes) -> int:
        try:
            self.conn.request("POST", "/v1/score", body=body, headers=self.headers)
            resp = self.conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0


def load_level(port: int, token: str, bodies: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    """Send up to ``requests`` requests with ``concurrency`` threads for at most ``seconds``."""
    lock = threading.Lock()
    next_i = [0]
    latencies: list[float] = []
    failures = [0]
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = _Conn(port, token)
        while time.monotonic() < deadline:
            with lock:
                i = next_i[0]
                if i >= requests:
                    return
                next_i[0] += 1
            t0 = time.perf_counter()
            status = conn.post(bodies[i % len(bodies)])
            dt = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(dt)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failed": failures[0],
        "seconds": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 2) if wall > 0 else 0.0,
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
    }


def batch_throughput(port: int, token: str, items: list[dict[str, Any]], batch_items: int, seconds: float) -> dict:
    """Items/s when the same items arrive as list requests of ``batch_items`` (one client)."""
    conn = _Conn(port, token)
    groups = [items[i : i + batch_items] for i in range(0, len(items), batch_items)]
    bodies = [(json.dumps(g).encode(), len(g)) for g in groups]
    scored = 0
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline and rounds < 3:
        for body, n in bodies:
            if conn.post(body) == 200:
                scored += n
        rounds += 1
    wall = time.perf_counter() - started
    return {
        "batch_items": batch_items,
        "items": scored,
        "seconds": round(wall, 3),
        "items_per_s": round(scored / wall, 2),
    }


def _make_lake(root: Path, rows: int) -> str:
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake
    from pipelines.model import TinyModel, register_model

    lake = open_lake(str(root))
    generate_backlog(lake, GenerateConfig(rows=rows, seed=7))
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)
    return "models:/tiny@champion"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", help="existing lake (default: a fresh generated one with the tiny model)")
    ap.add_argument("--model", help="model URI (default: the tiny model of the generated lake)")
    ap.add_argument("--items", type=int, default=200, help="distinct backlog items to send (default 200)")
    ap.add_argument("--requests", type=int, default=400, help="max requests per concurrency level (default 400)")
    ap.add_argument("--seconds", type=float, default=20.0, help="max seconds per level (default 20)")
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    ap.add_argument("--batch-items", type=int, default=64, help="items per request for the batch baseline")
    ap.add_argument("--max-batch-size", type=int, default=32, help="serve's dynamic batch size (default 32)")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    args = ap.parse_args()

    import ray
    from ray import serve

    from pipelines.lake import open_lake
    from pipelines.serve import ServeConfig
    from pipelines.serve.server import start, stop

    tmp = tempfile.TemporaryDirectory(prefix="bench-serve-")
    if args.lake:
        lake_root, model_uri = args.lake, args.model or "models:/starter@champion"
    else:
        lake_root = str(Path(tmp.name) / "lake")
        _log(f"generating {args.items} items and registering the tiny model in {lake_root}")
        model_uri = _make_lake(Path(lake_root), args.items)
    items = _payloads(lake_root, args.items)
    token = secrets.token_urlsafe(32)
    port = _free_port()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    config = ServeConfig(
        lake=open_lake(lake_root),
        model_uri=model_uri,
        port=port,
        token=token,
        max_batch_size=args.max_batch_size,
        replica_cpus=1.0,
    )
    t0 = time.perf_counter()
    start(config)
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    probe.request("GET", "/healthz")
    assert probe.getresponse().status == 200
    _log(f"serve up in {time.perf_counter() - t0:.1f}s on 127.0.0.1:{port}")
    try:
        bodies = [json.dumps(it).encode() for it in items]
        load_level(port, token, bodies, 4, min(40, args.requests), 10)  # warm-up, not reported
        levels = []
        for c in (int(x) for x in args.levels.split(",")):
            res = load_level(port, token, bodies, c, args.requests, args.seconds)
            _log(f"concurrency {c}: {json.dumps(res)}")
            levels.append(res)
        batch = batch_throughput(port, token, items, args.batch_items, args.seconds)
        _log(f"batch: {json.dumps(batch)}")
    finally:
        stop()
        serve.shutdown()
        ray.shutdown()
        tmp.cleanup()
    best = max((lv["requests_per_s"] for lv in levels), default=0.0)
    print(
        json.dumps(
            {
                "benchmark": "serve",
                "model": model_uri,
                "levels": levels,
                "batch": batch,
                # One item per request at the best concurrency vs. the same items in list requests.
                "online_vs_batch_items_ratio": round(best / batch["items_per_s"], 3) if batch["items_per_s"] else None,
                "max_batch_size": args.max_batch_size,
                "machine": {
                    "cpu": cpu_name(),
                    "cores": os.cpu_count(),
                    "gpus": gpus,
                    "python": platform.python_version(),
                    "ray": ray.__version__,
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                },
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
