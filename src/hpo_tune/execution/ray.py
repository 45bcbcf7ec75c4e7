"""Trials as tasks on a Ray cluster.

The cluster is ``address`` (none starts a local one); each trial asks for ``num_cpus`` and
``num_gpus`` (fractions allowed), so trials land on the cluster's GPUs. Ray is imported at the
first trial, so checking a config that names this executor needs no Ray. A task keeps nothing for the
next: each trial's pruner reads the study with a reader of its own.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hpo_tune.execution.limits import PoolLimits
from hpo_tune.execution.trial import Outcome, TrialJob, run_trial


class RayExecutor:
    """Trials as Ray tasks, each with ``num_cpus`` and ``num_gpus``; ``n_workers`` in flight at once."""

    def __init__(self, address: str | None = None, n_workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 trial_timeout: float | None = None, kill_grace_s: float = 30.0, poll_s: float = 0.5):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.limits, self.poll_s = PoolLimits(n_workers, trial_timeout, kill_grace_s), poll_s
        self._running: dict[Any, tuple[int, float]] = {}
        self._task: Any = None

    def _connect(self) -> Any:
        """Join (or start) the cluster at the first trial, not when the config is checked."""
        import ray

        from hpo_tune.resolvers import IMPORT_ROOT

        if not ray.is_initialized():  # workers import this project from its folder
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(IMPORT_ROOT)}})
        self._ray = ray
        return ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(run_trial)

    def free_slots(self) -> int:
        return self.limits.n_workers - len(self._running)

    def submit(self, job: TrialJob) -> None:
        self._task = self._task or self._connect()
        ref = self._task.remote(dataclasses.replace(job, timeout=self.limits.trial_timeout))
        self._running[ref] = (job.number, time.monotonic())

    def busy(self) -> bool:
        return bool(self._running)

    def wait(self) -> Outcome:
        outcome = Outcome()
        while not (outcome.finished or outcome.lost or outcome.timed_out):
            ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=self.poll_s)
            for ref in ready:
                number, _ = self._running.pop(ref)
                try:
                    outcome.finished.append(self._ray.get(ref))
                except (self._ray.exceptions.RayError, KeyboardInterrupt):  # the worker died or was killed
                    outcome.lost.append(number)
            for ref, (number, submitted) in list(self._running.items()):  # counted from submission: the backstop
                if self.limits.overran(submitted):
                    self._ray.cancel(ref, force=True)
                    self._running.pop(ref)
                    outcome.timed_out.append(number)
        return outcome

    def close(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()
