"""The job every worker runs: one trial, recorded in its child run.

A job is ``run_trial``: it calls the objective and records how it ended in the trial's child run,
which the driver created and claimed before handing the job out. Whichever executor runs it, the
job is the same, so a trial behaves alike inline, in a worker process and on a Ray cluster.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo_tune.errors import ConfigError
from hpo_tune.execution.limits import time_limit
from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.trial import (
    CURRENT_TRIAL,
    Checkpoint,
    Direction,
    Proposal,
    Resume,
    Trial,
    TrialContext,
    TrialPaused,
    TrialPruned,
    TrialState,
    best_trial,
    trial_seed,
)

if TYPE_CHECKING:
    from hpo_tune.storage.base import Recorder, StudyReader, TrialSink

Objective = Callable[..., float | Mapping[str, float]]
LOG_MODELS = ("best", "all", "none")
log = logging.getLogger(__name__)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial; picklable, so it can cross process boundaries."""

    objective: Objective
    sink: TrialSink
    run_id: str  # the trial's child run, created and claimed by the driver
    number: int
    proposal: Proposal
    seed: int
    device: str
    metric: str | None
    space: SearchSpace
    direction: Direction
    pruner: Pruner = Pruner()
    timeout: float | None = None  # seconds; set by the executor from its ``trial_timeout``
    log_models: str = "best"  # which trials' models are logged: best (better than any before it), all, none
    system_metrics: bool = False  # MLflow's CPU, memory and GPU metrics on the trial's run
    resume: Resume | None = None  # a promoted or re-run trial's epoch and what it did before it
    checkpoint_every: int = 0  # save the objective's state every this many epochs (0: only when paused)
    metrics: tuple[str, ...] = ()  # a study of several objectives: their metrics in order (``metric`` is the first)
    reader: StudyReader | None = field(default=None, compare=False, repr=False)  # the driver's store, inline

    def __getstate__(self) -> dict[str, Any]:
        """The driver's reader stays in the driver: a worker process reads the study itself (``run_trial``)."""
        return {**self.__dict__, "reader": None}


@dataclass
class Outcome:
    """What ``Executor.wait`` saw: at least one finished, lost or timed-out trial."""

    finished: list[Trial] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # numbers whose worker died: retried
    timed_out: list[int] = field(default_factory=list)  # numbers stopped at the time limit: failed


def resolve_device(device: str) -> str:
    """``auto`` means CUDA when present, else the CPU; a device this machine lacks is a config error."""
    if not DEVICE.match(str(device)):
        raise ConfigError("device", f"expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", "mps: this machine has no Apple GPU; use device=cpu or device=auto")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"it has {count} CUDA GPU(s)" if count else "no CUDA GPU is available here"
            raise ConfigError("device", f"{device}: {have}; use device=cpu or device=auto")
    return device


def objective_value(result: float | Mapping[str, float], metric: str | None) -> float:
    """The number to optimise from what the objective returned: itself, or ``result[metric]``."""
    if isinstance(result, Mapping):
        if metric is None or metric not in result:
            raise KeyError(f"the objective returned {sorted(result)} but the study optimises {metric!r}")
        return float(result[metric])
    return float(result)


def objective_values(result: float | Mapping[str, float], metrics: tuple[str, ...]) -> tuple[float, ...]:
    """The numbers a study of several objectives optimises, in order, from the mapping the objective returned."""
    if not isinstance(result, Mapping):
        raise TypeError(f"the study optimises {list(metrics)}: the objective must return a mapping holding them")
    missing = [metric for metric in metrics if metric not in result]
    if missing:
        raise KeyError(f"the objective returned {sorted(result)} but not {', '.join(missing)}")
    return tuple(float(result[metric]) for metric in metrics)


def run_trial(job: TrialJob, on_start: Callable[[], None] | None = None,
              readers: dict[TrialSink, StudyReader] | None = None) -> Trial:
    """Run one trial and record it; an exception or a NaN makes it FAILED, never stops the study.

    A pruner's verdict (raised from ``report``) makes it PRUNED, or PRUNED and paused at a rung (keeping
    the state the objective's ``checkpoint`` gives) in promote mode; a promoted trial (``job.resume``)
    gets that state back from ``restore()`` and reports only epochs past its rung; so does a trial run again after
    its worker died, from the last state it saved (every ``checkpoint_every`` epochs). KeyboardInterrupt marks it
    interrupted (to be run again on resume) and propagates. ``on_start`` is called when the trial
    proper starts (after the objective's ``setup``), which is when its time limit starts counting.
    The study is read back (pruning, keeping the best model) through ``job.reader`` when the trial runs
    in its driver's process, or else through the worker's own reader in ``readers``, made at its first
    need and kept for its later trials, so that each of them reads only what changed.
    """
    recorder = job.sink.recorder(job.run_id, job.proposal.params, job.metric)
    readers = {} if readers is None else readers
    resumed = job.resume.epoch if job.resume is not None else 0
    rungs = dict(job.resume.rungs) if job.resume is not None else {}
    if job.resume is not None:
        recorder.curve.update(job.resume.curve)
    halving = job.pruner.halving
    rung_epochs = set(halving.rungs_of(job.number, job.seed)) if halving is not None else set()

    def judge(epoch: int, metrics: Mapping[str, float], checkpoint: Callable[[], Any] | None) -> None:
        if epoch <= resumed:  # an objective that did not restore its state repeats epochs already on record
            return
        recorder.report(epoch, metrics)
        if not job.pruner.active or job.metric not in metrics:
            return
        value = float(metrics[job.metric])
        if epoch in rung_epochs:
            recorder.rung(epoch, value)
            rungs[epoch] = value
            if job.pruner.promotes:
                raise TrialPaused(epoch, None if checkpoint is None else checkpoint())
        reason = job.pruner.check(_reader(job, readers), job.direction, job.number, epoch, value, job.seed)
        if reason is not None:
            raise TrialPruned(f"epoch {epoch}: {reason}")

    def report(epoch: int, metrics: Mapping[str, float], checkpoint: Callable[[], Any] | None = None) -> None:
        judge(epoch, metrics, checkpoint)
        if checkpoint is not None and job.checkpoint_every and epoch > resumed and epoch % job.checkpoint_every == 0:
            recorder.checkpoint(epoch, checkpoint())

    def restore() -> Checkpoint | None:
        if job.resume is None:
            return None
        state = recorder.restore(job.resume.epoch, job.resume.run_id)
        return None if state is None else Checkpoint(job.resume.epoch, state)

    kept: list[tuple[Any, Any]] = []
    context = TrialContext(job.number, trial_seed(job.seed, job.number), job.device, report,
                           recorder.log_artifacts, dict(job.proposal.tags),
                           keep_model=lambda model, example: kept.append((model, example)), restore=restore,
                           run_id=recorder.run_id)
    start = time.perf_counter()
    entered = CURRENT_TRIAL.set(context)
    try:
        takes_context = len(inspect.signature(job.objective).parameters) > 1
        if callable(getattr(job.objective, "setup", None)):
            job.objective.setup()
        if on_start is not None:
            on_start()
        start = time.perf_counter()
        with time_limit(job.timeout), recorder.system_metrics(job.system_metrics):
            result = (job.objective(job.proposal.params, context) if takes_context
                      else job.objective(job.proposal.params))
        values = objective_values(result, job.metrics) if job.metrics else ()
        value = values[0] if values else objective_value(result, job.metric)
        if not all(math.isfinite(v) for v in values or (value,)):
            raise FloatingPointError(f"the objective is {values or value}")
        model = _kept_model(job, recorder, kept[-1], value, readers) if kept else None
    except TrialPruned as pruned:
        recorder.prune(str(pruned), time.perf_counter() - start)
        return _ended(job, TrialState.PRUNED, None, recorder, rungs)
    except TrialPaused as paused:
        recorder.pause(paused.epoch, paused.state, time.perf_counter() - start)
        return _ended(job, TrialState.PRUNED, None, recorder, rungs, paused=True)
    except KeyboardInterrupt as interrupt:
        recorder.fail(interrupt, time.perf_counter() - start, interrupted=True)
        raise
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes a failed trial
        recorder.fail(error, time.perf_counter() - start)
        return _ended(job, TrialState.FAILED, None, recorder, rungs)
    finally:
        CURRENT_TRIAL.reset(entered)
    recorder.complete(value, time.perf_counter() - start, model, values)
    return _ended(job, TrialState.COMPLETE, value, recorder, rungs, values=values)


def _reader(job: TrialJob, readers: dict[TrialSink, StudyReader]) -> StudyReader:
    if job.reader is not None:
        return job.reader
    if job.sink not in readers:
        readers[job.sink] = job.sink.reader(job.space, job.direction)
    return readers[job.sink]


def _kept_model(job: TrialJob, recorder: Recorder, kept: tuple[Any, Any], value: float,
                readers: dict[TrialSink, StudyReader]) -> str | None:
    """The URI of the trial's logged model, if the study keeps it; a model that fails to log is a warning,
    not a failed trial (its result stands)."""
    if not _keeps_model(job, value, readers):
        return None
    try:
        return recorder.log_model(*kept)
    except Exception as error:  # noqa: BLE001 - any failure to save or log the model
        log.warning("trial %d: its model was not logged: %s: %s", job.number, type(error).__name__, error)
        return None


def _keeps_model(job: TrialJob, value: float, readers: dict[TrialSink, StudyReader]) -> bool:
    """``log_models``: all, none, or best: only a trial better than every trial finished before it (as this
    process reads the study now), so a study logs a handful of models rather than one per trial."""
    if job.log_models != "best":
        return job.log_models == "all"
    best = best_trial(_reader(job, readers).history(), job.direction)
    return best is None or job.direction.better(value, best.value)


def _ended(job: TrialJob, state: TrialState, value: float | None, recorder: Recorder, rungs: Mapping[int, float],
           paused: bool = False, values: tuple[float, ...] = ()) -> Trial:
    return Trial(job.number, job.proposal.params, state, value, recorder.run_id, job.proposal.tags, recorder.curve,
                 dict(rungs), paused, values)
