"""The in-memory twin of the MLflow store: the real ``Driver`` runs on it in unit tests and in the search
bench, with no tracking at all.

``MemoryStudy`` is what a database would hold (runs, claims, the summary), shared by any number of
drivers in one process (threads) and guarded by one lock. Each driver has its own ``InMemoryStore`` on it,
reads it incrementally (a change log, as MLflow's stores are read by start and end times), and claims
numbers with the same rule as MLflow's ledger: the first run to claim ``(number, attempt)`` holds it.
A driver that "dies" (``kill``) stops being alive, as a killed process does: its running trials are
reaped by the others. Objects here do not cross processes: use the inline executor (or threads). The rows
and what a trial writes to them are in ``memory_runs``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.storage.index import STATUSES, Attempt, IndexedViews, TrialIndex
from hpo_tune.storage.memory_runs import MemoryHeartbeat, MemoryRecorder, MemoryRun, MemoryStudy
from hpo_tune.trial import Direction, Proposal, Trial


@dataclass(frozen=True, eq=False)
class MemorySink:
    """Where a trial of a ``MemoryStudy`` writes (in this process only)."""

    study: MemoryStudy = field(compare=False)

    def recorder(self, run_id: str, params: Mapping[str, Any], curve_metric: str | None) -> MemoryRecorder:
        return MemoryRecorder(self.study, run_id, curve_metric)

    def reader(self, space: SearchSpace, direction: Direction) -> InMemoryStore:
        return InMemoryStore(self.study, direction)


class InMemoryStore(IndexedViews):
    """One driver's view of a ``MemoryStudy``: the ``TrialStore`` interface, in memory."""

    def __init__(self, study: MemoryStudy, direction: Direction, stale_after_s: float = 60.0):
        self.study, self.direction, self.stale_after_s = study, direction, stale_after_s
        self.run_id = "memory"
        self.sink = MemorySink(study)
        self.owner = uuid.uuid4().hex[:12]
        self.read_found = 0
        self.index = TrialIndex(direction)
        self._cursor = 0  # how much of the study's change log this store has read
        with study.lock:
            study.alive.add(self.owner)

    def kill(self) -> None:
        """This driver dies as a SIGKILL'd process does: it writes nothing more, and others reap its trials."""
        with self.study.lock:
            self.study.alive.discard(self.owner)

    # -- reading -----------------------------------------------------------------------------------

    def history(self, full: bool = False) -> list[Trial]:
        with self.study.lock:
            if full:
                self.index.clear()
                self._cursor = 0
            changed = dict.fromkeys(self.study.changes[self._cursor:])
            self._cursor = len(self.study.changes)
            for run_id in changed:
                self._remember(self.study.runs[run_id])
        self.read_found = len(changed)
        return self.index.trials()

    def rung_values(self, epoch: int) -> dict[int, float]:
        with self.study.lock:
            return {run.number: run.rungs[epoch] for run in self.study.runs.values()
                    if epoch in run.rungs and not run.superseded}

    def _remember(self, run: MemoryRun) -> Attempt:
        proposal = run.proposal
        trial = Trial(run.number, dict(proposal.params), STATUSES[run.status], run.value, run.run_id,
                      dict(proposal.tags), dict(run.curve), dict(run.rungs), run.paused, run.values)
        holder = self.study.claims.get((run.number, run.attempt))
        attempt = Attempt(run.run_id, run.number, run.attempt, run.status, claimed=holder == run.run_id,
                          superseded=run.superseded, trial=trial, proposal=proposal, error=run.error, model=run.model,
                          checkpoint=max(run.checkpoints, default=None))
        self.index.put(attempt)
        return attempt

    # -- claiming ----------------------------------------------------------------------------------

    def start_trial(self, number: int, proposal: Proposal, device: str) -> str | None:
        with self.study.lock:
            attempt = self.index.next_attempt(number)
            while (holder := self.study.claims.get((number, attempt))) is not None:
                if not self._dead(self.study.runs[holder]):
                    return None
                attempt += 1
            run = MemoryRun(f"{number}.{attempt}", number, attempt, self.owner, proposal)  # one winner per claim
            self.study.claims[number, attempt] = run.run_id
            self.study.runs[run.run_id] = run
            self.study.changed(run)
            self._remember(run)
        return run.run_id

    def resume_trial(self, trial: Trial, epoch: int, device: str) -> str | None:
        with self.study.lock:
            run = self.study.runs[trial.run_id]
            key = (run.number, run.attempt, epoch)
            if self.study.promotions.setdefault(key, self.owner) != self.owner or not run.paused:
                return None
            run.status, run.paused, run.owner = "RUNNING", False, self.owner
            self.study.changed(run)
            self._remember(run)
        return run.run_id

    def _dead(self, run: MemoryRun) -> bool:
        """Whether a claim's run is dead (settling it if its owner died)."""
        self._remember(run)
        if run.superseded:
            return True
        if run.status == "RUNNING" and self._owner_gone(run):
            self._settle(run, superseded=True, error="interrupted: the process running it stopped")
            return True
        return False

    # -- heartbeats and reaping --------------------------------------------------------------------

    def heartbeat(self, interval_s: float) -> MemoryHeartbeat:
        return MemoryHeartbeat()

    def _owner_gone(self, run: MemoryRun) -> bool:
        return run.owner not in self.study.alive

    def reap(self, own: Collection[str] = ()) -> int:
        with self.study.lock:
            dead = [run for run in self.study.runs.values()
                    if run.status == "RUNNING" and run.run_id not in own and self._owner_gone(run)]
            for run in dead:
                self._settle(run, superseded=True, error="interrupted: the process running it stopped")
        return len(dead)

    # -- settling ----------------------------------------------------------------------------------

    def _settle(self, run: MemoryRun, **fields: Any) -> None:
        with self.study.lock:
            for key, value in {"status": "FAILED", **fields}.items():
                setattr(run, key, value)
            self.study.changed(run)
            self._remember(run)

    def lost(self, run_id: str, reason: str, max_retries: int = 2) -> None:
        with self.study.lock:
            run = self.study.runs[run_id]
            if run.status != "RUNNING":
                return
            deaths = sum(r.worker_died for r in self.study.runs.values() if r.number == run.number)
            if deaths < max_retries:
                self._settle(run, superseded=True, worker_died=True, error=f"interrupted: {reason}")
            else:
                self._settle(run, worker_died=True, error=f"gave up after {deaths + 1} attempts: {reason}")

    def fail_running(self, run_id: str, error: str) -> None:
        with self.study.lock:
            run = self.study.runs[run_id]
            if run.status == "RUNNING":
                self._settle(run, error=error)

    def interrupt_own(self, reason: str) -> int:
        with self.study.lock:
            own = [r for r in self.study.runs.values() if r.owner == self.owner and r.status == "RUNNING"]
            for run in own:
                self._settle(run, superseded=True, error=f"interrupted: {reason}")
        return len(own)

    def retry_failed(self) -> int:
        with self.study.lock:
            failed = [r for r in self.study.runs.values() if r.status == "FAILED" and not r.superseded]
            for run in failed:
                self._settle(run, superseded=True)
        return len(failed)

    # -- the study's summary -----------------------------------------------------------------------

    def write_summary(self, trials: list[Trial], extra: Mapping[str, float] | None = None) -> None:
        best = self.index.best()
        with self.study.lock:
            self.study.summary = {"n_trials": len(trials), "best_trial": None if best is None else best.number,
                                  **(extra or {})}

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        with self.study.lock:
            self.study.artifacts.update(files)

    def promote(self, best: Trial | None, name: str) -> None:
        model = self.kept_model(best)
        if model is not None:
            with self.study.lock:
                self.study.best_model = model

    def end(self, status: str) -> None:
        with self.study.lock:
            self.study.status = status
            self.study.alive.discard(self.owner)


def run_in_memory(strategy: Any, objective: Callable[..., Any], budget: int, *, study: MemoryStudy | None = None,
                  executor: Any = None, seed: int = 0, metric: str | None = None, max_retries: int = 2,
                  pruner: Pruner | None = None, checkpoint_every: int = 0) -> list[Trial]:
    """A study of ``objective(params)`` or ``objective(params, trial)`` driven by the real ``Driver`` on an
    in-memory store, with no tracking: the strategy tests and the search bench. Returns its live trials."""
    from hpo_tune.driver import Driver, Liveness
    from hpo_tune.execution import InlineExecutor, TrialJob

    study = study or MemoryStudy()
    store = InMemoryStore(study, strategy.direction)
    pruner = pruner or Pruner()
    make_job = partial(TrialJob, objective=objective, sink=store.sink, seed=seed, device="cpu", metric=metric,
                       space=strategy.space, direction=strategy.direction, log_models="none", reader=store,
                       pruner=pruner, checkpoint_every=checkpoint_every)
    driver = Driver(store, strategy, executor or InlineExecutor(), budget, make_job, "cpu", "memory", progress=False,
                    max_retries=max_retries, liveness=Liveness(poll_interval_s=0.01), explain=False, pruner=pruner,
                    seed=seed)
    try:
        return driver.run()
    finally:
        driver.stop()
        store.end("FINISHED")
