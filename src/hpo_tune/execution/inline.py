"""What an executor is, and the simplest one: trials in the driver's own process.

Executors only decide where jobs run; the driver asks an executor how many slots are free, hands
it that many proposals, and waits for an ``Outcome``.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from hpo_tune.execution.limits import valid_timeout
from hpo_tune.execution.trial import Outcome, TrialJob, run_trial


class Executor(Protocol):
    """Where trials run. ``submit`` queues a job; ``wait`` blocks until something happened."""

    def free_slots(self) -> int: ...

    def submit(self, job: TrialJob) -> None: ...

    def wait(self) -> Outcome: ...

    def busy(self) -> bool: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs each trial in the driver's own process, one at a time: simplest, and easiest to debug."""

    def __init__(self, trial_timeout: float | None = None):
        self.trial_timeout = valid_timeout(trial_timeout)
        self._queued: list[TrialJob] = []

    def free_slots(self) -> int:
        return 0 if self._queued else 1

    def submit(self, job: TrialJob) -> None:
        self._queued.append(dataclasses.replace(job, timeout=self.trial_timeout))

    def wait(self) -> Outcome:
        jobs, self._queued = self._queued, []
        return Outcome([run_trial(job) for job in jobs])

    def busy(self) -> bool:
        return bool(self._queued)

    def close(self) -> None:
        self._queued.clear()
