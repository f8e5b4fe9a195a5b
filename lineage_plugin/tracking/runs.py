"""Which MLflow run a read belongs to.

MLflow's active run is per thread. A read in a thread that has an active run belongs to that
run. A read in a thread without one (a worker the training code started) belongs to the one run
active in the process, if there is exactly one; with several, the answer would be a guess, so
the read is reported as ambiguous instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """Where a read goes.

    Attributes:
        run_id: The run, or ``None`` when no run is active (the read waits for the next run).
        ambiguous_runs: The candidate runs when several are active in other threads.
        experiment_id: The run's experiment (what a write stamps on its commit).
    """

    run_id: str | None
    ambiguous_runs: tuple[str, ...] = ()
    experiment_id: str | None = None


def _active_runs_in_other_threads() -> dict[str, str]:
    """The runs active in other live threads: run id -> experiment id."""
    from mlflow.tracking import fluent

    stack_var = getattr(fluent, "_active_run_stack", None)
    if stack_var is None or not hasattr(stack_var, "get_all_thread_values"):
        return {}
    alive = {t.ident for t in threading.enumerate()}
    runs: dict[str, str] = {}
    for ident, stack in stack_var.get_all_thread_values().items():
        if ident in alive and stack:
            info = stack[-1].info
            runs.setdefault(info.run_id, info.experiment_id)
    return runs


def target_run() -> Target:
    """Find the run a read (or write) made now, in this thread, belongs to."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        return Target(active.info.run_id, experiment_id=active.info.experiment_id)
    runs = _active_runs_in_other_threads()
    if len(runs) == 1:
        ((run_id, experiment_id),) = runs.items()
        return Target(run_id, experiment_id=experiment_id)
    if runs:
        return Target(None, ambiguous_runs=tuple(runs))
    return Target(None)
