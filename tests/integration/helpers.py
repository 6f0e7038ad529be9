"""Shared helpers for integration tests: generated lakes, a registered tiny model, CLI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from pipelines.lake import Lake, open_lake

TINY_URI = "models:/tiny@champion"


def make_lake(root: Path, *, rows: int, bad_rows: int = 0, seed: int = 7, enrich: float = 1.0) -> Lake:
    """Generate a backlog and register the tiny model as champion in a fresh lake."""
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.model import TinyModel, register_model

    lake = open_lake(str(root))
    generate_backlog(lake, GenerateConfig(rows=rows, seed=seed, bad_rows=bad_rows, enrich=enrich))
    register_model(TinyModel(), lake=lake, name="tiny", promote=True)
    return lake


def copy_lake(src: Lake, dst: Path) -> Lake:
    shutil.copytree(src.root, dst)
    return open_lake(str(dst))


def batchjobs(*args: str, ray_address: str | None = None) -> subprocess.Popen[str]:
    """Start `python -m batchjobs ARGS` as its own process (a real driver that can be killed)."""
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    return subprocess.Popen(
        [sys.executable, "-m", "batchjobs", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_ok(*args: str, ray_address: str | None = None, timeout: float = 600) -> str:
    proc = batchjobs(*args, ray_address=ray_address)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"batchjobs {' '.join(args)} exited {proc.returncode}:\n{out}\n{err[-4000:]}"
    return out


def read(lake: Lake, table: str) -> pl.DataFrame:
    return pl.read_delta(lake.path(table))


def delta_commits(lake: Lake, table: str) -> int:
    log = Path(lake.path(table)) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant process of ``pid`` with its command line (Linux /proc)."""
    parent: dict[int, int] = {}
    cmd: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may contain spaces, so split after ')'.
        parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, par in parent.items():
            if par == p and child not in found:
                found[child] = cmd.get(child, "")
                frontier.append(child)
    return found
