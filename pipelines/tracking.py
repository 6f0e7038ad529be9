"""MLflow run tracking for jobs: one run per job, its id is the ``run_id`` in every row.

Tracking and registry live at ``lake.mlflow_uri`` (a folder lake's own sqlite store
``DIR/mlflow.db``; for an ``s3://`` lake the ``--tracking-uri`` / ``$MLFLOW_TRACKING_URI`` it was
opened with) with artifacts under ``lake.artifacts_uri`` (``ROOT/mlartifacts``, in the bucket for
an ``s3://`` lake), in the same experiment as training runs
(:func:`pipelines.model.ensure_experiment`), so a lake carries its whole history.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines.lake import Lake
from pipelines.model.store import ensure_experiment


def _client(lake: Lake) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=lake.mlflow_uri, registry_uri=lake.mlflow_uri)


def prewarm(lake: Lake) -> threading.Thread:
    """Import MLflow and open the lake's tracking store in a background thread.

    Importing mlflow and opening a sqlite store take seconds; a job starts this before its
    first pass over the tables so that :func:`job_run` later finds both ready. Errors are left
    for :func:`job_run` to raise where the job expects them.
    """

    def warm() -> None:
        with contextlib.suppress(Exception):  # job_run raises the real error in the job's thread
            import mlflow  # noqa: F401 - the import is most of the cost

            # A store that does not exist yet is created (and says so on stderr) by job_run, after
            # the job's inputs were checked: a job that fails on bad input prints one line only.
            if lake.tracking_store_exists:
                _client(lake).get_experiment_by_name("__prewarm__")

    thread = threading.Thread(target=warm, name="mlflow-prewarm", daemon=True)
    thread.start()
    return thread


def experiment_id(lake: Lake) -> str:
    """The id of the lake's experiment, created (artifacts under the lake) if new."""
    return ensure_experiment(lake)


@dataclass
class JobRun:
    """A started MLflow run; ``run_id`` goes into every row the job writes."""

    run_id: str
    lake: Lake

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        client = _client(self.lake)
        for k, v in metrics.items():
            client.log_metric(self.run_id, k, float(v))

    def log_params(self, params: Mapping[str, object]) -> None:
        client = _client(self.lake)
        for k, v in params.items():
            client.log_param(self.run_id, k, str(v)[:500])


@contextmanager
def job_run(lake: Lake, *, job: str, tags: Mapping[str, str] | None = None) -> Iterator[JobRun]:
    """Start an MLflow run for one job; it ends FINISHED, or FAILED if the job raises."""
    client = _client(lake)
    run = client.create_run(experiment_id(lake), run_name=job, tags={"job": job, **dict(tags or {})})
    status = "FAILED"
    try:
        yield JobRun(run.info.run_id, lake)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)
