"""The driver's contract without MLflow, for strategy tests: numbers filled lowest first, one at a time."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from src.strategies import Strategy
from src.trial import Trial, TrialState


def drive(strategy: Strategy, objective: Callable[[dict[str, Any], int], float], budget: int | None = None,
          fail: Collection[int] = (), interrupt_at: int | None = None) -> list[Trial]:
    """Run ``strategy`` until it is finished (or ``budget`` trials ran); ``objective(params, number)``.

    Trials numbered in ``fail`` fail; the trial numbered ``interrupt_at`` dies once (it never reaches
    the history, as an interrupted trial does not) and is proposed again.
    """
    history: list[Trial] = []
    while budget is None or len(history) < budget:
        taken = {t.number for t in history}
        number = next(k for k in range(10**6) if k not in taken)
        decision = strategy.propose(history, [number])
        if decision.finished:
            break
        (proposal,) = decision.proposals
        if number == interrupt_at:
            interrupt_at = None
            continue
        if number in fail:
            history.append(Trial(number, proposal.params, TrialState.FAILED, None, f"r{number}", proposal.tags))
        else:
            value = objective(proposal.params, number)
            history.append(Trial(number, proposal.params, TrialState.COMPLETE, value, f"r{number}", proposal.tags))
    return history
