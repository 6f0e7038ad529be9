"""The sweep's run id, sent to pass-2 tasks that are already running.

Pass-2 tasks read and re-decide while the driver imports MLflow and starts the job's run
(seconds in a fresh process); only their commits need the run id, which every row they write
carries. A :class:`RunIdBox` is one key in the Ray cluster's key-value store (kept by the GCS,
so no worker process is taken from the tasks): tasks poll it; the driver writes the run id once
the run exists and the new pack is recorded, or a failure that makes every waiting task stop
before committing anything. The key is unique to one sweep invocation; it is removed once every
task has returned (a failed sweep leaves it, a few bytes, for tasks that have not read it yet).

The store is Ray's internal key-value API (``ray.experimental.internal_kv``, the one Ray's own
libraries use); :func:`available` says whether this Ray has it, else the sweep starts its run
before submitting pass 2, as it did before.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

NAMESPACE = "trustbatch"
_FAILED = b"!"


def available() -> bool:
    try:
        from ray.experimental import internal_kv

        return internal_kv._internal_kv_initialized()
    except (ImportError, AttributeError):
        return False


@dataclass(frozen=True)
class RunIdBox:
    """A value set once by the driver; :meth:`get` waits for it (picklable: tasks carry it)."""

    key: str = field(default_factory=lambda: f"sweep-run-id/{uuid.uuid4().hex}")

    def set(self, run_id: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(self.key, run_id.encode(), overwrite=False, namespace=NAMESPACE)

    def fail(self, why: str) -> None:
        """Release the waiting tasks without a run id (no-op once a run id was set)."""
        from ray.experimental import internal_kv

        internal_kv._internal_kv_put(self.key, _FAILED + why.encode(), overwrite=False, namespace=NAMESPACE)

    def get(self) -> str:
        """In a task: the run id, once the driver has set it (RuntimeError if it failed instead)."""
        from ray.experimental import internal_kv

        pause = 0.01
        while (value := internal_kv._internal_kv_get(self.key, namespace=NAMESPACE)) is None:
            time.sleep(pause)
            pause = min(0.2, pause * 2)
        if value.startswith(_FAILED):
            why = value[len(_FAILED) :].decode()
            raise RuntimeError(f"the sweep's run did not start ({why}); this task committed nothing")
        return value.decode()

    def close(self) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(self.key, namespace=NAMESPACE)
