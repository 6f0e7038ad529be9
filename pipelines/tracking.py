"""MLflow run tracking for jobs: one run per job, its id is the ``run_id`` in every row.

Tracking and registry default to the lake's sqlite store (``DIR/mlflow.db``) with artifacts
under ``DIR/mlartifacts``; ``MLFLOW_TRACKING_URI`` overrides both for teams with a server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from pipelines.lake import Lake

EXPERIMENT = "batchjobs"


def tracking_uri(lake: Lake) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or lake.mlflow_uri


def configure(lake: Lake) -> None:
    """Point MLflow's tracking and registry at the lake's store."""
    import mlflow

    uri = tracking_uri(lake)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def experiment_id(lake: Lake, name: str = EXPERIMENT) -> str:
    """The id of experiment ``name``, created with its artifacts under the lake if new."""
    import mlflow

    configure(lake)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(mlflow.create_experiment(name, artifact_location=lake.artifacts_uri))
    except mlflow.exceptions.MlflowException:
        # Created concurrently by another job on the same lake.
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


@dataclass
class JobRun:
    """A started MLflow run; ``run_id`` goes into every row the job writes."""

    run_id: str

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow import MlflowClient

        client = MlflowClient()
        for k, v in metrics.items():
            client.log_metric(self.run_id, k, float(v))

    def log_params(self, params: Mapping[str, object]) -> None:
        from mlflow import MlflowClient

        client = MlflowClient()
        for k, v in params.items():
            client.log_param(self.run_id, k, str(v)[:500])


@contextmanager
def job_run(lake: Lake, *, job: str, tags: Mapping[str, str] | None = None) -> Iterator[JobRun]:
    """Start an MLflow run for one job; it ends FINISHED, or FAILED if the job raises."""
    from mlflow import MlflowClient

    exp = experiment_id(lake)
    client = MlflowClient()
    run = client.create_run(exp, run_name=job, tags={"job": job, **dict(tags or {})})
    status = "FAILED"
    try:
        yield JobRun(run.info.run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)
