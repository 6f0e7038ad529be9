"""Peak resident memory of this process and of the Ray workers it started (Linux /proc, no psutil).

``VmHWM`` in ``/proc/PID/status`` is a process's peak RSS since it started. The workers are the
worker processes (``ray::...``) below this driver's own raylet, so other Rays on a shared machine
are not counted.
"""

from __future__ import annotations

import os
from pathlib import Path


def _status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def peak_rss_mib(pid: int | str = "self") -> float:
    return _status_kib(pid, "VmHWM") / 1024


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def worker_peaks_mib() -> list[float]:
    """Peak RSS of every Ray worker process of this driver's local node (MiB, largest first)."""
    import ray

    node = ray._private.worker._global_node  # the only handle on the raylet's pid
    raylet: list[int] = [p.process.pid for p in node.all_processes.get("raylet", [])] if node is not None else []
    kids = _children()
    stack, found = list(raylet), []
    while stack:
        pid = stack.pop()
        for child in kids.get(pid, []):
            stack.append(child)
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::") or b"default_worker" in cmd:
                found.append(peak_rss_mib(child))
    return sorted(found, reverse=True)


def start_warm_ray() -> None:
    """Start a local Ray with one CPU per core and its workers started, as a cluster would have them."""
    import ray

    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)

    @ray.remote
    def _warm() -> int:
        return os.getpid()

    ray.get([_warm.remote() for _ in range(2 * (os.cpu_count() or 2))])
