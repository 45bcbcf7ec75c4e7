"""Model-based multi-fidelity (BOHB's rule): a strategy fitted on the rung values of a halving pruner.

Under ``pruner=asha`` or ``pruner=hyperband`` most trials stop (or pause) at a low rung, so few reach
the final epoch. A strategy that sees only complete trials learns from a handful of points and takes
every stopped trial for a failure (the BOs count it as the worst value seen). With ``fidelity: rungs``
the strategy instead sees the study at one *budget*: the highest epoch at which at least ``min_points``
trials recorded a value (the final one counts as a budget: complete trials), as Falkner et al. (BOHB,
ICML 2018) fit their model "on the largest budget with enough observations". Trials that reached that
budget show as complete with their value there; trials that stopped below it are left out of the view
(BOHB's model has no observation of them at that budget); failed and running trials stay as they are.
Any strategy of the history works this way (random is unchanged by it). Under a halving pruner the BOs
do so by default (``fidelity: final`` turns it off: they would count every stopped trial as the worst
value seen); TPE by default ranks stopped trials by their curves, as Optuna's own pruners feed it, and
``strategy=bohb`` is TPE on the rungs instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hpo_tune.space import SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Trial, TrialState

FIDELITIES = ("final", "rungs")
BAYES = ("gp_bo", "gamma_bo")  # fitted on rungs by default under a halving pruner


def budget_view(history: Sequence[Trial], min_points: int) -> list[Trial]:
    """The history as seen at the highest budget with at least ``min_points`` values (the final one: complete
    trials; else the highest rung epoch); unchanged while no rung has enough either."""
    complete = [t for t in history if t.state is TrialState.COMPLETE and t.value is not None]
    if len(complete) >= min_points:
        return list(history)
    counts: dict[int, int] = {}
    for trial in history:
        for epoch in trial.rungs:
            counts[epoch] = counts.get(epoch, 0) + 1
    enough = [epoch for epoch, count in counts.items() if count >= min_points]
    if not enough:
        return list(history)
    budget = max(enough)
    view = []
    for trial in history:
        if budget in trial.rungs and trial.state is not TrialState.FAILED:
            view.append(replace(trial, state=TrialState.COMPLETE, value=trial.rungs[budget], paused=False))
        elif trial.state in (TrialState.FAILED, TrialState.RUNNING):
            view.append(trial)
    return view


class RungFitted(Strategy):
    """``base`` proposing from ``budget_view`` of the history; the rest is ``base``'s own."""

    def __init__(self, base: Strategy, min_points: int | None = None, name: str | None = None):
        super().__init__(base.space, base.seed, base.direction)
        self.base, self.name = base, name or base.name
        self.min_points = min_points if min_points is not None else default_min_points(base.space)

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        return self.base.propose(budget_view(history, self.min_points), numbers)

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        return self.base.artifacts(budget_view(history, self.min_points))

    def max_trials(self) -> int | None:
        return self.base.max_trials()

    def fit_budget(self, n_trials: int) -> str | None:
        return self.base.fit_budget(n_trials)


def default_min_points(space: SearchSpace) -> int:
    """BOHB's threshold: more than d + 1 observations for d dimensions."""
    return len(space) + 2
