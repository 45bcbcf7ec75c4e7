"""What a ``MemoryStudy`` holds (runs, claims, the summary) and what a trial writes to it, as a database and a
trial's recorder would: the rows the in-memory store (``hpo_tune.storage.memory``) reads back."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from hpo_tune.trial import Proposal


@dataclass
class MemoryRun:
    """One attempt's run, as a store row."""

    run_id: str
    number: int
    attempt: int
    owner: str
    proposal: Proposal
    status: str = "RUNNING"
    value: float | None = None
    values: tuple[float, ...] = ()
    metrics: dict[str, dict[int, float]] = field(default_factory=dict)
    curve: dict[int, float] = field(default_factory=dict)
    rungs: dict[int, float] = field(default_factory=dict)
    paused: bool = False
    checkpoints: dict[int, Any] = field(default_factory=dict)  # epoch -> the state it paused or checkpointed with
    error: str | None = None
    superseded: bool = False
    worker_died: bool = False
    model: str | None = None


class MemoryStudy:
    """A study's rows, shared by its drivers; every method holds the one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.runs: dict[str, MemoryRun] = {}
        self.claims: dict[tuple[int, int], str] = {}
        self.promotions: dict[tuple[int, int, int], str] = {}  # (number, attempt, rung epoch) -> the promoting owner
        self.changes: list[str] = []  # run ids, in the order they changed: what readers read incrementally
        self.alive: set[str] = set()  # the owners (drivers) that run
        self.summary: dict[str, Any] = {}
        self.artifacts: dict[str, str | bytes] = {}
        self.models: dict[str, Any] = {}  # URI -> the kept model
        self.best_model: str | None = None  # the run whose model is the study's best
        self.status = "RUNNING"

    def changed(self, run: MemoryRun) -> None:
        self.changes.append(run.run_id)


class MemoryRecorder:
    """Writes one trial into its ``MemoryStudy`` row."""

    def __init__(self, study: MemoryStudy, run_id: str, curve_metric: str | None):
        self.study, self.run_id, self.curve_metric = study, run_id, curve_metric
        self.curve: dict[int, float] = {}

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.curve_metric in metrics:
            self.curve[epoch] = float(metrics[self.curve_metric])
        with self.study.lock:
            for key, value in metrics.items():
                self.study.runs[self.run_id].metrics.setdefault(key, {})[epoch] = float(value)

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        """Trials' files are not kept in memory."""

    def rung(self, epoch: int, value: float) -> None:
        with self.study.lock:
            self.study.runs[self.run_id].rungs[epoch] = float(value)

    def checkpoint(self, epoch: int, state: Any) -> None:
        with self.study.lock:
            run = self.study.runs[self.run_id]
            if run.status == "RUNNING":  # settled meanwhile (taken for dead): its re-run may have started already
                run.checkpoints[epoch], run.curve = copy.deepcopy(state), dict(self.curve)
                self.study.changed(run)

    def restore(self, epoch: int, run_id: str | None = None) -> Any:
        with self.study.lock:
            return copy.deepcopy(self.study.runs[run_id or self.run_id].checkpoints.get(epoch))

    def pause(self, epoch: int, state: Any, duration_s: float) -> None:
        with self.study.lock:
            if state is not None and self.study.runs[self.run_id].status == "RUNNING":
                self.study.runs[self.run_id].checkpoints[epoch] = copy.deepcopy(state)
        self._end("KILLED", paused=True)

    def log_model(self, model: Any, input_example: Any) -> str:
        uri = f"memory:/{self.run_id}"
        with self.study.lock:
            self.study.models[uri] = model
        return uri

    def system_metrics(self, enabled: bool) -> AbstractContextManager[None]:
        return nullcontext()

    def complete(self, value: float, duration_s: float, model: str | None = None,
                 values: tuple[float, ...] = ()) -> None:
        self._end("FINISHED", value=value, model=model, values=values)

    def prune(self, reason: str, duration_s: float) -> None:
        self._end("KILLED")

    def fail(self, error: BaseException, duration_s: float, interrupted: bool = False) -> None:
        self._end("FAILED", error=f"{type(error).__name__}: {error}", superseded=interrupted)

    def _end(self, status: str, **fields: Any) -> None:
        with self.study.lock:
            run = self.study.runs[self.run_id]
            if run.status == "RUNNING":  # a run settled by another driver meanwhile stays as it was settled
                for key, value in {"status": status, "curve": dict(self.curve), **fields}.items():
                    setattr(run, key, value)
                self.study.changed(run)


class MemoryHeartbeat:
    """In memory a run's owner is alive while its driver is (``MemoryStudy.alive``), as an owner on the same
    host is while its pid is: there is nothing to beat, only the runs to keep track of."""

    def __init__(self) -> None:
        self.runs: set[str] = set()

    def add(self, run_id: str) -> None:
        self.runs.add(run_id)

    def discard(self, run_id: str) -> None:
        self.runs.discard(run_id)

    def close(self) -> None:
        self.runs.clear()
