"""Optuna's TPE, the baseline a user would otherwise reach for, driven by the MLflow history.

Optuna keeps its own storage; here it gets none that outlives a proposal. Each proposal builds an
in-memory Optuna study from the trials read back from MLflow (complete, failed and pruned ones, a
pruned or paused trial with its learning curve as intermediate values, so TPE ranks it by how far it
got and its value there, as with Optuna's own pruners; and the running ones as pending so TPE's
constant liar spreads a batch out), asks it for one
trial with a sampler seeded by (seed, trial number), and throws the study away. MLflow stays the
only source of truth, so a resumed study proposes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Int, LogFloat, SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Direction, Proposal, Trial, TrialState, trial_seed

optuna.logging.set_verbosity(optuna.logging.WARNING)  # one throwaway study per proposal: no chatter

STATES = {TrialState.COMPLETE: optuna.trial.TrialState.COMPLETE, TrialState.FAILED: optuna.trial.TrialState.FAIL,
          TrialState.PRUNED: optuna.trial.TrialState.PRUNED, TrialState.RUNNING: optuna.trial.TrialState.RUNNING}


def distribution(dim: Dimension) -> BaseDistribution:
    """The Optuna distribution matching one of our dimensions."""
    if isinstance(dim, Choice):
        return CategoricalDistribution(dim.values)
    if isinstance(dim, Int):
        # Optuna's log ints take no step: drawn on every integer, then snapped onto the step grid in propose
        return IntDistribution(dim.low, dim.high, step=1 if dim.log else dim.step, log=dim.log)
    return FloatDistribution(dim.low, dim.high, log=isinstance(dim, LogFloat))


class OptunaTPE(Strategy):
    """TPE with ``n_startup_trials`` random trials first (Optuna's default 10)."""

    name = "optuna_tpe"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, n_startup_trials: int = 10,
                 multivariate: bool = True, constant_liar: bool = True):
        super().__init__(space, seed, direction)
        if n_startup_trials < 0:
            raise ConfigError("strategy.n_startup_trials", f"must be >= 0, got {n_startup_trials}")
        self.n_startup_trials, self.multivariate, self.constant_liar = n_startup_trials, multivariate, constant_liar
        self.distributions = {name: distribution(dim) for name, dim in space.items()}

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        known = [self._frozen(t) for t in history]
        proposals = []
        for number in numbers:
            sampler = optuna.samplers.TPESampler(seed=trial_seed(self.seed, number) % 2**32,
                                                 n_startup_trials=self.n_startup_trials,
                                                 multivariate=self.multivariate, constant_liar=self.constant_liar)
            study = optuna.create_study(direction=self.direction.value, sampler=sampler)
            study.add_trials(known)
            asked = study.ask(self.distributions)
            params = {name: dim.snap(asked.params[name]) if isinstance(dim, Int) else asked.params[name]
                      for name, dim in self.space.items()}
            proposals.append(Proposal(params))
            known.append(self._frozen(Trial(number, params, TrialState.RUNNING)))
        return Decision(proposals)

    def _frozen(self, trial: Trial) -> optuna.trial.FrozenTrial:
        complete = trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)
        state = STATES[trial.state] if complete or trial.state is not TrialState.COMPLETE else STATES[TrialState.FAILED]
        curve = {step: value for step, value in trial.curve.items() if math.isfinite(value)}
        return optuna.trial.create_trial(state=state, value=trial.value if complete else None,
                                         params=dict(trial.params), distributions=self.distributions,
                                         intermediate_values=curve if trial.state is TrialState.PRUNED else None)
