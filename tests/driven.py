"""Strategy studies for tests: the real ``Driver`` on the in-memory store, with an objective of ``(params, number)``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

import pytest

from hpo_tune.storage.memory import run_in_memory
from hpo_tune.storage.memory_runs import MemoryStudy
from hpo_tune.strategies import Strategy
from hpo_tune.trial import Trial

UNTIL_FINISHED = 10**6  # a budget no strategy test reaches: the strategy says when the study is finished


def drive(strategy: Strategy, objective: Callable[[dict[str, Any], int], float], budget: int | None = None,
          fail: Collection[int] = (), interrupt_at: int | None = None) -> list[Trial]:
    """Run ``strategy`` until it is finished (or ``budget`` trials ran; None: the strategy's own maximum).

    Trials numbered in ``fail`` raise; the study is stopped (Ctrl-C) during trial ``interrupt_at`` and then
    resumed on the same store, as a user re-running the command would: that trial runs again.
    """
    study, interrupted = MemoryStudy(), False

    def run(params: dict[str, Any], trial: Any) -> float:
        nonlocal interrupted
        if trial.number == interrupt_at and not interrupted:
            interrupted = True
            raise KeyboardInterrupt
        if trial.number in fail:
            raise RuntimeError(f"trial {trial.number} fails")
        return objective(params, trial.number)

    limit = budget if budget is not None else strategy.max_trials() or UNTIL_FINISHED
    try:
        return run_in_memory(strategy, run, limit, study=study)
    except KeyboardInterrupt:
        return run_in_memory(strategy, run, limit, study=study)


def renders_beside_proposals(monkeypatch: pytest.MonkeyPatch, strategy: Strategy, history: list[Trial],
                             module: ModuleType, drawing: str, propose: Callable[[], Any]
                             ) -> tuple[list[dict[str, Any]], list[Exception]]:
    """Three renders of ``history`` in a background thread, as the driver's explainer makes them beside its
    proposals, with the hand-overs forced: each call of ``module.drawing`` waits until the main thread has
    called ``propose()``. Returns the renders and what the render thread raised."""
    asked, resume = threading.Semaphore(0), threading.Semaphore(0)
    draw = getattr(module, drawing)

    def handing_over(*args: Any, **options: Any) -> Any:
        asked.release()
        resume.acquire()
        return draw(*args, **options)

    monkeypatch.setattr(module, drawing, handing_over)
    renders, errors = [], []

    def render() -> None:
        try:
            renders.extend(strategy.artifacts(history) for _ in range(3))
        except Exception as error:  # reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=render)
    thread.start()
    while thread.is_alive():  # proposals only at the hand-overs: a busy loop would starve the render of the GIL
        if asked.acquire(timeout=0.05):
            propose()
            resume.release()  # the render goes on after this proposal
    thread.join()
    monkeypatch.undo()
    return renders, errors
