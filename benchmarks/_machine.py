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
