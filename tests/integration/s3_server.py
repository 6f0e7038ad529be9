"""An S3 server on loopback for integration tests: ``moto_server`` (the ``moto[server]`` test extra)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

# CI sets this: there the S3 tests must run, so a missing or dead server fails instead of skipping.
REQUIRE_ENV = "TRUSTBATCH_REQUIRE_S3"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables a job needs to use the server at ``endpoint``."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",  # deltalake and polars refuse a plain-http endpoint otherwise
    }


@contextmanager
def moto_s3(log: Path, *, buckets: tuple[str, ...]) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port, create ``buckets``, point the AWS variables at it.

    Yields the endpoint URL. The server is stopped by its pid. Skips the calling test with the
    reason when the server cannot be found or does not start (fails it where ``TRUSTBATCH_REQUIRE_S3=1``).
    """
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    exe = shutil.which("moto_server", path=path)
    if exe is None:
        _unavailable("moto_server not found: install the test extra (moto[server]) to run the S3 lake tests")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"moto_server could not start on {endpoint}: {log.read_text()[-500:]}")
                time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp:
            for k, v in s3_env(endpoint).items():
                mp.setenv(k, v)
            # Only for this test process: MLflow caches its boto3 client per process, keyed by this
            # variable (not by AWS_ENDPOINT_URL), so a second module's server would get the first one's client.
            mp.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            import boto3

            client = boto3.client("s3")
            for bucket in buckets:
                client.create_bucket(Bucket=bucket)
            yield endpoint
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def bucket_keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]
