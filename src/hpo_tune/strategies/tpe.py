"""Optuna's TPE, the baseline a user would otherwise reach for, driven by the MLflow history.

Optuna keeps its own storage; here it gets none that outlives a proposal. Each proposal builds an
in-memory Optuna study from the trials read back from MLflow (complete, failed and pruned ones, a
pruned or paused trial with its learning curve as intermediate values, so TPE ranks it by how far it
got and its value there, as with Optuna's own pruners; and the running ones as pending so TPE's
constant liar spreads a batch out), asks it for one
trial with a sampler seeded by (seed, trial number), and throws the study away. MLflow stays the
only source of truth, so a resumed study proposes exactly what an uninterrupted one would.

A conditional space (``hpo_tune.space``) is asked define-by-run, parents first, so an inactive dimension is
never asked and the history's trials carry only their active parameters; the sampler then decomposes the
history by which parameters each trial has (``TPESampler(group=True)``, with ``multivariate``), as Optuna does
for a conditional objective of its own. An unconditional space is asked the same way in config order, which is
what ``study.ask(distributions)`` does, so its proposals are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Int, LogFloat, Params, SearchSpace
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


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> object:
    """Ask ``trial`` for ``name`` from ``dist`` through Optuna's public define-by-run calls."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def frozen_trial(trial: Trial, distributions: dict[str, BaseDistribution]) -> optuna.trial.FrozenTrial:
    """``trial`` as an Optuna study holds one, for any code that hands the history to Optuna (TPE, the importance
    evaluators): a complete trial without a finite value is a failed one, a pruned one keeps its learning curve.
    A trial of a study of several objectives gives its ``values``."""
    values = trial.values or (trial.value,)
    complete = trial.state is TrialState.COMPLETE and all(v is not None and math.isfinite(v) for v in values)
    state = STATES[trial.state] if complete or trial.state is not TrialState.COMPLETE else STATES[TrialState.FAILED]
    curve = {step: value for step, value in trial.curve.items() if math.isfinite(value)}
    return optuna.trial.create_trial(state=state, values=list(values) if complete else None,
                                     params=dict(trial.params),
                                     distributions={name: distributions[name] for name in trial.params},
                                     intermediate_values=curve if trial.state is TrialState.PRUNED else None)


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
        known = [frozen_trial(t, self.distributions) for t in history]
        proposals = []
        for number in numbers:
            sampler = optuna.samplers.TPESampler(seed=trial_seed(self.seed, number) % 2**32,
                                                 n_startup_trials=self.n_startup_trials,
                                                 multivariate=self.multivariate, constant_liar=self.constant_liar,
                                                 group=self.multivariate and bool(self.space.conditions))
            study = optuna.create_study(directions=[d.value for d in self.directions], sampler=sampler)
            study.add_trials(known)
            params = self._ask(study.ask())
            proposals.append(Proposal(params))
            known.append(frozen_trial(Trial(number, params, TrialState.RUNNING), self.distributions))
        return Decision(proposals)

    def _ask(self, trial: optuna.Trial) -> Params:
        """The active dimensions' values, asked parents first (log ints snapped onto their step before a child
        looks at them), in config order."""
        params: Params = {}
        for name in self.space.parents_first:
            if name in self.space.active(params):
                dim, value = self.space[name], suggest(trial, name, self.distributions[name])
                params[name] = dim.snap(value) if isinstance(dim, Int) else value
        return {name: params[name] for name in self.space if name in params}
