"""Run a benchmark script again in a fresh process (its own peak RSS, its own Ray, its own
allocator settings) and return the JSON line it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_json(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python script *args`` with ``env`` added to this environment; exits with the child's
    stderr tail when it fails, else relays its stderr tail and returns its last stdout line."""
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    sys.stderr.write(proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])
