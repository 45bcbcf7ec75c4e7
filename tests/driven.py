"""Strategy studies for tests: the real ``Driver`` on the in-memory store, with an objective of ``(params, number)``."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from src.storage.memory import MemoryStudy, run_in_memory
from src.strategies import Strategy
from src.trial import Trial

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
