"""Running trials: the job every worker runs, and the executors that schedule it.

A job is ``run_trial`` (``trial``): it calls the objective and records how it ended in the trial's
child run, which the driver created and claimed before handing the job out. Executors only decide
where jobs run; the driver asks an executor how many slots are free, hands it that many proposals,
and waits for an ``Outcome``: finished trials, trials whose worker was lost (retried up to a limit),
and trials stopped for running past ``trial_timeout`` (failed for good; ``limits``).

- ``inline``: in the driver's process, one at a time.
- ``process``: ``n_workers`` local worker processes (spawned, so CUDA and threads are safe); each
  loads its data once and keeps it; a worker that dies is replaced; workers die with their driver.
- ``ray``: tasks on a Ray cluster (``address``; none starts a local one) with per-trial
  ``num_cpus`` and ``num_gpus`` (fractions allowed), so trials land on the cluster's GPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.execution.inline import Executor, InlineExecutor
from hpo_tune.execution.process import ProcessExecutor
from hpo_tune.execution.ray import RayExecutor
from hpo_tune.execution.trial import DEVICE, LOG_MODELS, Objective, Outcome, Resume, TrialJob, resolve_device

__all__ = ["DEVICE", "LOG_MODELS", "Executor", "InlineExecutor", "Objective", "Outcome", "ProcessExecutor",
           "Resume", "TrialJob", "make_executor", "resolve_device"]

EXECUTORS: dict[str, Callable[..., Executor]] = {
    "inline": InlineExecutor, "process": ProcessExecutor, "ray": RayExecutor,
}


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    """The executor ``name`` built from the config's ``options``; a wrong name or option is a config error."""
    if name not in EXECUTORS:
        raise ConfigError("executor.name", f"unknown executor {name!r}; use one of {sorted(EXECUTORS)}")
    try:
        return EXECUTORS[name](**(options or {}))
    except TypeError as error:
        raise ConfigError("executor", f"bad options for executor {name!r}: {error}") from None
