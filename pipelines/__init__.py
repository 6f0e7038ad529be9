"""The Ray Data dataflow and its stages: schemas, lake, sink, policy packs, models, backfill,
sweep, audit, report rendering and online serving. Each stage has a small public API in its
own subpackage; the CLI in ``batchjobs`` only calls these."""

import os as _os
import sys as _sys

_IN_RAY_WORKER = bool(_sys.argv) and _sys.argv[0].endswith("default_worker.py")

if _IN_RAY_WORKER and "POLARS_MAX_THREADS" not in _os.environ:
    # A Ray worker runs tasks on the CPUs they reserve, and Ray sizes OMP_NUM_THREADS to them (1
    # by default). polars sizes its thread pool once, at import, to every core of the machine:
    # each of N workers would run N threads. Measured on 2 cores, 2 workers, the 10^7-row audit:
    # 4.7 s with one polars thread per worker, 5.1 s with two.
    _os.environ["POLARS_MAX_THREADS"] = _os.environ.get("OMP_NUM_THREADS", "1")

WORKER_MALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000,oversize_threshold:0"
"""What a Ray worker adds to polars' allocator settings (``$TRUSTBATCH_WORKER_MALLOC_CONF``;
empty: polars' own). polars gives its jemalloc freed pages back to the system after 0.5-1 s,
and jemalloc returns blocks of 8 MiB or more (a column of a 2 M-row range) at once; a worker
that runs task after task then faults in all its memory again in each task (measured: a 2 M-row
audit range 110-280 k page faults and twice the CPU time of the next range, every audit).
jemalloc's stock decay (10 s) for every size keeps them while tasks follow each other and
still returns them to the system when the worker idles."""

if _IN_RAY_WORKER and "polars" not in _sys.modules:
    # Before polars is imported: it reads $_RJEM_MALLOC_CONF then, appending it to its own
    # defaults (the later setting wins). A worker inherits the driver's value, polars' defaults.
    _conf = _os.environ.get("TRUSTBATCH_WORKER_MALLOC_CONF", WORKER_MALLOC_CONF)
    if _conf:
        _os.environ["_RJEM_MALLOC_CONF"] = ",".join(filter(None, [_os.environ.get("_RJEM_MALLOC_CONF"), _conf]))
