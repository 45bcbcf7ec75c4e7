"""Running trials: the job every worker runs, and the executors that schedule it.

A job is ``run_trial``: it opens the trial's child run under the study's parent, calls the
objective, and records how it ended. Executors only decide where jobs run; the driver asks an
executor how many slots are free and hands it that many proposals.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from src.errors import ConfigError
from src.tracking import TrialRecorder, TrialSink
from src.trial import Proposal, Trial, TrialContext, TrialState, trial_seed

Objective = Callable[..., float | Mapping[str, float]]


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial; picklable, so it can cross process boundaries."""

    objective: Objective
    sink: TrialSink
    number: int
    proposal: Proposal
    seed: int
    device: str
    metric: str | None


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when present, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def objective_value(result: float | Mapping[str, float], metric: str | None) -> float:
    """The number to optimise from what the objective returned: itself, or ``result[metric]``."""
    if isinstance(result, Mapping):
        if metric is None or metric not in result:
            raise KeyError(f"the objective returned {sorted(result)} but the study optimises {metric!r}")
        return float(result[metric])
    return float(result)


def run_trial(job: TrialJob) -> Trial:
    """Run one trial and record it; an exception or a NaN makes it FAILED, never stops the study.

    KeyboardInterrupt marks the trial interrupted (to be run again on resume) and propagates.
    """
    recorder = TrialRecorder(job.sink, job.number, job.proposal, job.device)
    context = TrialContext(job.number, trial_seed(job.seed, job.number), job.device, recorder.report,
                           recorder.log_artifacts, dict(job.proposal.tags))
    start = time.perf_counter()
    try:
        takes_context = len(inspect.signature(job.objective).parameters) > 1
        result = job.objective(job.proposal.params, context) if takes_context else job.objective(job.proposal.params)
        value = objective_value(result, job.metric)
        if not math.isfinite(value):
            raise FloatingPointError(f"the objective is {value}")
    except KeyboardInterrupt as interrupt:
        recorder.fail(interrupt, time.perf_counter() - start, interrupted=True)
        raise
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes a failed trial
        recorder.fail(error, time.perf_counter() - start)
        return Trial(job.number, job.proposal.params, TrialState.FAILED, None, recorder.run_id, job.proposal.tags)
    recorder.complete(value, time.perf_counter() - start)
    return Trial(job.number, job.proposal.params, TrialState.COMPLETE, value, recorder.run_id, job.proposal.tags)


class Executor(Protocol):
    """Where trials run. ``submit`` queues a job; ``wait`` returns at least one finished trial."""

    def free_slots(self) -> int: ...

    def submit(self, job: TrialJob) -> None: ...

    def wait(self) -> list[Trial]: ...

    def busy(self) -> bool: ...


class InlineExecutor:
    """Runs each trial in the driver's own process, one at a time: simplest, and easiest to debug."""

    def __init__(self) -> None:
        self._queued: list[TrialJob] = []

    def free_slots(self) -> int:
        return 0 if self._queued else 1

    def submit(self, job: TrialJob) -> None:
        self._queued.append(job)

    def wait(self) -> list[Trial]:
        done = [run_trial(job) for job in self._queued]
        self._queued.clear()
        return done

    def busy(self) -> bool:
        return bool(self._queued)


EXECUTORS: dict[str, Callable[..., Executor]] = {"inline": InlineExecutor}


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    if name not in EXECUTORS:
        raise ConfigError("executor.name", f"unknown executor {name!r}; use one of {sorted(EXECUTORS)}")
    try:
        return EXECUTORS[name](**(options or {}))
    except TypeError as error:
        raise ConfigError("executor", f"bad options for executor {name!r}: {error}") from None
