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

WORKER_ONE_ARENA = "narenas:1"
"""Put before :data:`WORKER_MALLOC_CONF` in a worker that runs one polars thread (the jobs'
tasks): one jemalloc arena for the task's thread and polars' pool thread. jemalloc gives threads
arenas of their own (four per CPU), and the pages one thread freed waited, 10 s, for that
thread's arena alone: a worker running range after range came to hold two ranges' worth (the
5 x 10^7-row audit's largest worker peaked at 1,169-1,236 MiB after 26-52 ranges, 1,003-1,058
after 18 at 10^7; with one arena 1,051 and 942-960, no slower: its two threads take turns). Not
where polars runs several threads at once (a Serve replica given more CPUs): they would contend
for the one arena."""

if _IN_RAY_WORKER and "polars" not in _sys.modules:
    # Before polars is imported: it reads $_RJEM_MALLOC_CONF then, appending it to its own
    # defaults (the later setting wins). A worker inherits the driver's value, polars' defaults.
    _conf = _os.environ.get("TRUSTBATCH_WORKER_MALLOC_CONF")
    if _conf is None:
        _one_thread = _os.environ.get("POLARS_MAX_THREADS") == "1"
        _conf = ",".join([WORKER_ONE_ARENA, WORKER_MALLOC_CONF] if _one_thread else [WORKER_MALLOC_CONF])
    if _conf:
        _os.environ["_RJEM_MALLOC_CONF"] = ",".join(filter(None, [_os.environ.get("_RJEM_MALLOC_CONF"), _conf]))

WORKER_MALLOC_KEEP_MB = 256
"""How much freed memory a Ray worker's C allocator (glibc's malloc, which numpy's arrays use)
keeps at the top of its heap instead of giving it back (``$TRUSTBATCH_WORKER_MALLOC_KEEP_MB``;
0: glibc's own setting). glibc's thresholds start at 128 KiB and follow the largest block freed:
the arrays of a 2 M-row audit range (sorted scores, key hashes: 8-24 MiB each) were mapped and
given back in every task, 13-22 k page faults per range, about 0.03-0.04 CPU-s of its 0.6. With
arrays under 32 MiB (glibc's largest threshold) taken from the heap and 256 MiB kept: 0-4 k."""


def _keep_freed_c_memory(keep_mb: int) -> None:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (macOS, musl): its allocator stays as it is
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, keep_mb << 20)
    mallopt(m_top_pad, min(keep_mb, 64) << 20)


if _IN_RAY_WORKER:
    _keep_mb = int(_os.environ.get("TRUSTBATCH_WORKER_MALLOC_KEEP_MB", WORKER_MALLOC_KEEP_MB) or 0)
    if _keep_mb > 0:
        _keep_freed_c_memory(_keep_mb)
