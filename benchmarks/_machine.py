"""What every benchmark records about the machine it ran on (figures from different machines
are not comparable, so each JSON line carries this)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(**versions: str) -> dict[str, object]:
    """CPU, core count, Python, the given library versions and the 1-minute load average."""
    return {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        **versions,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def cpu_times() -> tuple[int, int]:
    """(steal, total) CPU ticks since boot from /proc/stat ((0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(since: tuple[int, int]) -> float | None:
    """The share of CPU time the hypervisor took from this machine since ``since`` (a
    :func:`cpu_times`): on a shared virtual machine, timings are noisy in proportion."""
    steal, total = cpu_times()
    return round((steal - since[0]) / (total - since[1]), 3) if total > since[1] else None
