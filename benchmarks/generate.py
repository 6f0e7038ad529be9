"""Benchmark of the backlog generator: wall time and peak RSS at 10,000 and 100,000 rows.

Each size runs in its own subprocess, so peak RSS (``ru_maxrss``) is that size's alone; the
10,000-row run is the in-run baseline: rows/s should hold and peak RSS should stay flat as N
grows tenfold (the generator streams). Prints one JSON line last.

    .venv/bin/python benchmarks/generate.py [--rows 10000 100000] [--bad-rows 110]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _child(rows: int, bad_rows: int, root: str) -> None:
    from pipelines.generate import GenerateConfig, generate_backlog
    from pipelines.lake import open_lake

    t0 = time.perf_counter()
    summary = generate_backlog(open_lake(root), GenerateConfig(rows=rows, bad_rows=bad_rows))
    seconds = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "rows": rows + bad_rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round((rows + bad_rows) / seconds),
                "peak_rss_mib": round(peak_kib / 1024),
                "lake_mib": round(size / 2**20, 1),
                "positives": summary.positives,
            }
        ),
        flush=True,
    )
    # Leave without the interpreter's teardown (pyarrow/deltalake threads, apache/arrow#34314).
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--bad-rows", type=int, default=0)
    parser.add_argument("--child", type=str, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rows[0], args.bad_rows, args.child)
        return
    results = []
    root = Path(__file__).resolve().parents[1]
    for n in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            cmd = [sys.executable, __file__, "--rows", str(n), "--bad-rows", str(args.bad_rows), "--child", tmp]
            env = {**os.environ, "PYTHONPATH": str(root)}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{n:>9,} rows: {results[-1]['seconds']} s, peak RSS {results[-1]['peak_rss_mib']} MiB", flush=True)
    import deltalake
    import PIL
    import pyarrow

    base, top = results[0], results[-1]
    print(
        json.dumps(
            {
                "benchmark": "generate",
                "machine": {
                    "cpu": _cpu_name(),
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "deltalake": deltalake.__version__,
                    "pyarrow": pyarrow.__version__,
                    "pillow": PIL.__version__,
                },
                "results": [{k: v for k, v in r.items() if k != "positives"} for r in results],
                "rows_per_s_ratio_vs_first": round(top["rows_per_s"] / base["rows_per_s"], 2),
                "peak_rss_ratio_vs_first": round(top["peak_rss_mib"] / base["peak_rss_mib"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
