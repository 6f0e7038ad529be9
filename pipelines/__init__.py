"""The Ray Data dataflow and its stages: schemas, lake, sink, policy packs, models, backfill,
sweep, audit, report rendering and online serving. Each stage has a small public API in its
own subpackage; the CLI in ``batchjobs`` only calls these."""

import os as _os
import sys as _sys

if _sys.argv and _sys.argv[0].endswith("default_worker.py") and "POLARS_MAX_THREADS" not in _os.environ:
    # A Ray worker runs tasks on the CPUs they reserve, and Ray sizes OMP_NUM_THREADS to them (1
    # by default). polars sizes its thread pool once, at import, to every core of the machine:
    # each of N workers would run N threads. Measured on 2 cores, 2 workers, the 10^7-row audit:
    # 4.7 s with one polars thread per worker, 5.1 s with two.
    _os.environ["POLARS_MAX_THREADS"] = _os.environ.get("OMP_NUM_THREADS", "1")
