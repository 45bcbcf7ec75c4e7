"""Trials in ``n_workers`` local worker processes.

Workers are spawned, so CUDA and threads are safe; each loads its data once and keeps it; a worker
that dies is replaced, and its trial reported lost; workers die with their driver. Jobs cross to
the workers as cloudpickle bytes; the worker loop, ``_work``, is what each process is started on,
so it must stay importable at this module's path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import cloudpickle

from hpo_tune.execution.limits import PoolLimits
from hpo_tune.execution.trial import Outcome, TrialJob, run_trial

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
_READY = "ready"  # a worker's first message: started and imported
CLOSE_GRACE_S = 0.2  # how long a closing pool waits for idle workers to exit before killing them


def _work(index: int, tasks: multiprocessing.Queue, results: multiprocessing.Queue, driver: int) -> None:
    """A worker process: run the jobs it is handed until it gets None, and die with its driver.

    It says when each trial starts, so the time limit does not count the worker's start-up, and keeps one
    reader per study for its trials' pruners.
    """
    _die_with(driver)
    import hpo_tune.tracking  # noqa: F401 - imported before the first trial, not inside its time limit

    results.put((index, _READY))
    readers: dict = {}
    while (payload := tasks.get()) is not None:
        job: TrialJob = cloudpickle.loads(payload)
        job = dataclasses.replace(job, device=_worker_device(job.device, index))
        results.put((index, run_trial(job, on_start=lambda: results.put((index, None)), readers=readers)))


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
        self.limits, self.poll_s = PoolLimits(n_workers, trial_timeout, kill_grace_s), poll_s
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
