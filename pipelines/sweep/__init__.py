"""Retroactive sweeps: re-decide stored scores under a new policy pack, exactly once, and report."""

from pipelines.sweep.config import SweepConfig
from pipelines.sweep.run import SweepPlan, SweepResult, plan_sweep, run_sweep

__all__ = ["SweepConfig", "SweepPlan", "SweepResult", "plan_sweep", "run_sweep"]
