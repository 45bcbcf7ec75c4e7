"""Running trials: the job every worker runs, and the executors that schedule it.

A job is ``run_trial``: it calls the objective and records how it ended in the trial's child run,
which the driver created and claimed before handing the job out. Executors only decide where jobs
run; the driver asks an executor how many slots are free, hands it that many proposals, and waits
for an ``Outcome``: finished trials, trials whose worker was lost (retried up to a limit), and
trials stopped for running past ``trial_timeout`` (failed for good).

The time limit counts the trial only: it starts when the objective is called, after the worker
has started, imported what it needs and run the objective's optional ``setup()`` (the CLI's
objective loads its data there). It is enforced twice: inside the trial, by an alarm that raises
``TrialTimeout`` (the trial fails cleanly, with its error recorded), and, for trials stuck where
Python cannot raise (native code holding the interpreter), by the process and Ray executors
killing the worker ``kill_grace_s`` later.

- ``inline``: in the driver's process, one at a time.
- ``process``: ``n_workers`` local worker processes (spawned, so CUDA and threads are safe); each
  loads its data once and keeps it; a worker that dies is replaced; workers die with their driver.
- ``ray``: tasks on a Ray cluster (``address``; none starts a local one) with per-trial
  ``num_cpus`` and ``num_gpus`` (fractions allowed), so trials land on the cluster's GPUs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import inspect
import logging
import math
import multiprocessing
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cloudpickle

from src.errors import ConfigError
from src.pruning import Pruner
from src.space import SearchSpace
from src.trial import (
    Direction,
    Proposal,
    Trial,
    TrialContext,
    TrialPruned,
    TrialState,
    TrialTimeout,
    best_trial,
    trial_seed,
)

if TYPE_CHECKING:  # MLflow loads where trials run, not in a config check that imports this module
    from src.tracking import TrialRecorder, TrialSink

Objective = Callable[..., float | Mapping[str, float]]
LOG_MODELS = ("best", "all", "none")
log = logging.getLogger(__name__)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)


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


def run_trial(job: TrialJob, on_start: Callable[[], None] | None = None) -> Trial:
    """Run one trial and record it; an exception or a NaN makes it FAILED, never stops the study.

    A pruner's verdict (raised from ``report``) makes it PRUNED; KeyboardInterrupt marks it
    interrupted (to be run again on resume) and propagates. ``on_start`` is called when the trial
    proper starts (after the objective's ``setup``), which is when its time limit starts counting.
    """
    from src.tracking import TrialRecorder

    recorder = TrialRecorder(job.sink, job.run_id, job.proposal.params, curve_metric=job.metric)

    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        recorder.report(epoch, metrics)
        if job.pruner.active and job.metric in metrics:
            reason = job.pruner.check(job.sink, job.space, job.direction, job.number, epoch, metrics[job.metric])
            if reason is not None:
                raise TrialPruned(f"epoch {epoch}: {reason}")

    kept: list[tuple[Any, Any]] = []
    context = TrialContext(job.number, trial_seed(job.seed, job.number), job.device, report,
                           recorder.log_artifacts, dict(job.proposal.tags),
                           keep_model=lambda model, example: kept.append((model, example)))
    start = time.perf_counter()
    try:
        takes_context = len(inspect.signature(job.objective).parameters) > 1
        if callable(getattr(job.objective, "setup", None)):
            job.objective.setup()
        if on_start is not None:
            on_start()
        start = time.perf_counter()
        with _time_limit(job.timeout), recorder.system_metrics(job.system_metrics):
            result = (job.objective(job.proposal.params, context) if takes_context
                      else job.objective(job.proposal.params))
        value = objective_value(result, job.metric)
        if not math.isfinite(value):
            raise FloatingPointError(f"the objective is {value}")
        model = _kept_model(job, recorder, kept[-1], value) if kept else None
    except TrialPruned as pruned:
        recorder.prune(str(pruned), time.perf_counter() - start)
        return _ended(job, TrialState.PRUNED, None, recorder)
    except KeyboardInterrupt as interrupt:
        recorder.fail(interrupt, time.perf_counter() - start, interrupted=True)
        raise
    except Exception as error:  # noqa: BLE001 - any failure of user code becomes a failed trial
        recorder.fail(error, time.perf_counter() - start)
        return _ended(job, TrialState.FAILED, None, recorder)
    recorder.complete(value, time.perf_counter() - start, model)
    return _ended(job, TrialState.COMPLETE, value, recorder)


def _kept_model(job: TrialJob, recorder: TrialRecorder, kept: tuple[Any, Any], value: float) -> str | None:
    """The URI of the trial's logged model, if the study keeps it; a model that fails to log is a warning,
    not a failed trial (its result stands)."""
    if not _keeps_model(job, value):
        return None
    try:
        return recorder.log_model(*kept)
    except Exception as error:  # noqa: BLE001 - any failure to save or log the model
        log.warning("trial %d: its model was not logged: %s: %s", job.number, type(error).__name__, error)
        return None


def _keeps_model(job: TrialJob, value: float) -> bool:
    """``log_models``: all, none, or best: only a trial better than every trial finished before it (as this
    process reads the study now), so a study logs a handful of models rather than one per trial."""
    if job.log_models != "best":
        return job.log_models == "all"
    from src.tracking import StudyRecord

    best = best_trial(StudyRecord.of(job.sink, job.space, job.direction).history(), job.direction)
    return best is None or job.direction.better(value, best.value)


def _ended(job: TrialJob, state: TrialState, value: float | None, recorder: TrialRecorder) -> Trial:
    return Trial(job.number, job.proposal.params, state, value, recorder.run_id, job.proposal.tags, recorder.curve)


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
        self.trial_timeout = _timeout(trial_timeout)
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


def _timeout(seconds: float | None, key: str = "executor.trial_timeout") -> float | None:
    if seconds is not None and not seconds > 0:
        raise ConfigError(key, f"must be a positive number of seconds or null, got {seconds!r}")
    return seconds


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``TrialTimeout`` inside the trial after ``seconds`` (main thread only: it uses SIGALRM)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TrialTimeout(f"the trial ran past its limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _work(index: int, tasks: multiprocessing.Queue, results: multiprocessing.Queue, driver: int) -> None:
    """A worker process: run the jobs it is handed until it gets None, and die with its driver.

    It says when each trial starts, so the time limit does not count the worker's start-up.
    """
    _die_with(driver)
    import src.tracking  # noqa: F401 - imported before the first trial, not inside its time limit

    results.put((index, _READY))
    while (payload := tasks.get()) is not None:
        job: TrialJob = cloudpickle.loads(payload)
        job = dataclasses.replace(job, device=_worker_device(job.device, index))
        results.put((index, run_trial(job, on_start=lambda: results.put((index, None)))))


_READY = "ready"  # a worker's first message: started and imported
CLOSE_GRACE_S = 0.2  # how long a closing pool waits for idle workers to exit before killing them


def _die_with(driver: int) -> None:
    """End this worker when its driver dies, so no trial outlives the process that owns it.

    Linux delivers SIGKILL on the parent's death (prctl); elsewhere a thread watches the parent pid.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):

        def watch() -> None:
            while os.getppid() == driver:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="hpo-driver-watch", daemon=True).start()
    if os.getppid() != driver:  # the driver died before the signal was armed
        os._exit(1)


def _worker_device(device: str, index: int) -> str:
    """Spread workers over the GPUs when there are several and the job asks for plain ``cuda``."""
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{index % count}" if count > 1 else device


@dataclass(frozen=True)
class _PoolLimits:
    """A pool's worker count and time limits: the in-trial limit, and when to kill a worker whose
    trial ignored it (``kill_grace_s`` later)."""

    n_workers: int
    trial_timeout: float | None
    kill_grace_s: float

    def __post_init__(self) -> None:
        if self.n_workers < 1:
            raise ConfigError("executor.n_workers", f"must be >= 1, got {self.n_workers}")
        _timeout(self.trial_timeout)
        _timeout(self.kill_grace_s, "executor.kill_grace_s")

    def overran(self, started: float | None) -> bool:
        return (self.trial_timeout is not None and started is not None
                and time.monotonic() - started > self.trial_timeout + self.kill_grace_s)


@dataclass
class _Worker:
    process: Any
    tasks: Any
    job: TrialJob | None = None
    started: float | None = None  # when the job started running in the worker
    ready: bool = False  # it has imported what trials need


class ProcessExecutor:
    """``n_workers`` local processes; a dead worker's trial is reported lost and the worker replaced."""

    def __init__(self, n_workers: int = 2, trial_timeout: float | None = None, kill_grace_s: float = 30.0,
                 poll_s: float = 0.2):
        self.limits, self.poll_s = _PoolLimits(n_workers, trial_timeout, kill_grace_s), poll_s
        self._context = multiprocessing.get_context("spawn")
        self._results = self._context.Queue()
        self._workers: list[_Worker] = []

    def _start(self, index: int) -> _Worker:
        tasks = self._context.Queue()
        process = self._context.Process(target=_work, args=(index, tasks, self._results, os.getpid()), daemon=True,
                                        name=f"hpo-worker-{index}")
        process.start()
        return _Worker(process, tasks)

    def warm(self) -> None:
        """Start every worker now and return once each has imported what trials need: a warm pool, whose
        first trials start at once (workers otherwise start with the first trials handed to them)."""
        while len(self._workers) < self.limits.n_workers:
            self._workers.append(self._start(len(self._workers)))
        while starting := [k for k, worker in enumerate(self._workers) if not worker.ready]:
            try:
                self._note(*self._results.get(timeout=self.poll_s))
            except queue.Empty:
                dead = next((k for k in starting if not self._workers[k].process.is_alive()), None)
                if dead is not None:
                    raise RuntimeError(f"worker {dead} died while starting (exit code "
                                       f"{self._workers[dead].process.exitcode}); its error is above") from None

    def _note(self, index: int, message: Any) -> bool:
        """Take in a worker's news that is not a finished trial (ready; its trial started); False otherwise."""
        if message == _READY:
            self._workers[index].ready = True
        elif message is None:
            self._workers[index].started = time.monotonic()
        else:
            return False
        return True

    def free_slots(self) -> int:
        return self.limits.n_workers - sum(w.job is not None for w in self._workers)

    def submit(self, job: TrialJob) -> None:
        if len(self._workers) < self.limits.n_workers:
            self._workers.append(self._start(len(self._workers)))
        worker = next(w for w in self._workers if w.job is None)
        worker.job, worker.started = job, None
        worker.tasks.put(cloudpickle.dumps(dataclasses.replace(job, timeout=self.limits.trial_timeout)))

    def busy(self) -> bool:
        return any(w.job is not None for w in self._workers)

    def wait(self) -> Outcome:
        outcome = Outcome()
        while not (outcome.finished or outcome.lost or outcome.timed_out):
            try:
                index, trial = self._results.get(timeout=self.poll_s)
            except queue.Empty:
                self._check(outcome)
                continue
            if self._note(index, trial):
                continue
            self._workers[index].job = None
            outcome.finished.append(trial)
        return outcome

    def _check(self, outcome: Outcome) -> None:
        """Replace workers that died, or that overran the time limit without the trial stopping itself."""
        for index, worker in enumerate(self._workers):
            if worker.job is None:
                continue
            overran = self.limits.overran(worker.started)
            if worker.process.is_alive() and not overran:
                continue
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
                outcome.timed_out.append(worker.job.number)
            else:
                outcome.lost.append(worker.job.number)
            self._workers[index] = self._start(index)

    def close(self) -> None:
        """Idle workers are asked to stop, and given a moment; then whatever still runs is killed (an idle
        worker holds no trial; a Python that imported torch takes about a second just to exit)."""
        for worker in self._workers:
            if worker.job is None and worker.process.is_alive():
                worker.tasks.put(None)
        deadline = time.monotonic() + CLOSE_GRACE_S
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()) if worker.job is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._workers.clear()


class RayExecutor:
    """Trials as Ray tasks, each with ``num_cpus`` and ``num_gpus``; ``n_workers`` in flight at once."""

    def __init__(self, address: str | None = None, n_workers: int = 2, num_cpus: float = 1, num_gpus: float = 0,
                 trial_timeout: float | None = None, kill_grace_s: float = 30.0, poll_s: float = 0.5):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.limits, self.poll_s = _PoolLimits(n_workers, trial_timeout, kill_grace_s), poll_s
        self._running: dict[Any, tuple[int, float]] = {}
        self._task: Any = None

    def _connect(self) -> Any:
        """Join (or start) the cluster at the first trial, not when the config is checked."""
        import ray

        from src.resolvers import PROJECT_ROOT

        if not ray.is_initialized():  # workers import this project from its folder
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
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


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "inline": InlineExecutor, "process": ProcessExecutor, "ray": RayExecutor,
}


def make_executor(name: str, options: Mapping[str, Any] | None = None) -> Executor:
    if name not in EXECUTORS:
        raise ConfigError("executor.name", f"unknown executor {name!r}; use one of {sorted(EXECUTORS)}")
    try:
        return EXECUTORS[name](**(options or {}))
    except TypeError as error:
        raise ConfigError("executor", f"bad options for executor {name!r}: {error}") from None
