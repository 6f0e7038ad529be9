"""`batchjobs serve` wiring without Ray: options reach ServeConfig, no token means exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchjobs.cli import main
from pipelines.serve import ServeConfig


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ServeConfig, Any]]:
    import pipelines.serve.server as server

    calls: list[tuple[ServeConfig, Any]] = []
    monkeypatch.setattr(
        server, "serve_forever", lambda config, *, ray_address=None: calls.append((config, ray_address))
    )
    return calls


def test_options_reach_the_config(tmp_path: Path, captured: list, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("file-token-0123456789\n")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    code = main(
        ["serve", "--lake", str(tmp_path / "lake"), "--model", "models:/tiny@champion", "--port", "8123",
         "--token-file", str(token), "--max-body-bytes", "2048", "--batch-wait-ms", "2", "--log-decisions",
         "--log-max-rows", "100", "--log-max-seconds", "1.5", "--ray-address", "ray://head:10001"]
    )  # fmt: skip
    assert code == 0
    ((config, address),) = captured
    assert (config.port, config.host, config.token) == (8123, "127.0.0.1", "file-token-0123456789")
    assert (config.max_body_bytes, config.batch_wait_s, config.log_decisions) == (2048, 0.002, True)
    assert (config.log.max_rows, config.log.max_seconds) == (100, 1.5)
    assert address == "ray://head:10001"


def test_token_from_environment(tmp_path: Path, captured: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHJOBS_TOKEN", "env-token-0123456789")
    assert main(["serve", "--lake", str(tmp_path)]) == 0
    assert captured[0][0].token == "env-token-0123456789"


def test_refuses_to_start_without_a_token(
    tmp_path: Path, captured: list, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BATCHJOBS_TOKEN", raising=False)
    assert main(["serve", "--lake", str(tmp_path)]) == 2
    assert "no API token" in capsys.readouterr().err and not captured
    assert main(["serve", "--lake", str(tmp_path), "--insecure-no-auth"]) == 0
    assert captured[0][0].token is None and captured[0][0].insecure_no_auth


def test_bad_values_are_one_line_errors(tmp_path: Path, captured: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHJOBS_TOKEN", "env-token-0123456789")
    assert main(["serve", "--lake", str(tmp_path), "--log-max-seconds", "0"]) == 2
    assert main(["serve", "--lake", str(tmp_path), "--port", "99999"]) == 2
    assert not captured
