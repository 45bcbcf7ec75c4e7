"""Trials a strategy is given rather than choosing: enqueued configurations and an earlier study's results.

``Enqueued`` runs the user's configurations as the study's first trial numbers: exact trials, counted in the
budget, tagged ``enqueued``. ``WarmStarted`` shows a strategy the finished trials of an earlier study beside the
study's own, without running them again: they carry negative numbers (``-1, -2, ...``, so they never take one
of the study's) and the tag ``warm_start_from``. Both wrap the strategy and keep it a pure function of what it
is shown: the given trials are fixed before the study starts, so a resume sees the same ones.

Strategies of the history alone (``HISTORY_ALONE``: random, the BOs, TPE) see the enqueued trials as trials of
their own, with their real numbers, as Optuna's samplers see enqueued trials: a BO counts them in its initial
design. Strategies that follow a plan indexed by trial number (grid, t_sampling, factorial_grid, per_epoch) run
their whole plan after them, numbered from 0 in their own view, and never see them: a plan has no place for
foreign points. Such plans have no use for an earlier study's values either, so they refuse a warm start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.space import Float, Params, SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Proposal, Trial, TrialState

HISTORY_ALONE = ("random", "gp_bo", "gamma_bo", "optuna_tpe")  # no plan indexed by trial number (bohb: TPE)
ENQUEUED, WARM_START_FROM = "enqueued", "warm_start_from"  # the tags of given trials
WARM_VALUES = ("quantile", "raw")  # how an earlier study's values are shown (``WarmStarted``)


def check_enqueued(space: SearchSpace, configs: Any) -> list[Params]:
    """The enqueued configurations as parameter sets, or a one-line ``ConfigError`` naming the first bad one."""
    if configs is None:
        return []
    if isinstance(configs, Mapping) or isinstance(configs, str) or not isinstance(configs, Sequence):
        raise ConfigError("enqueue", f"must be a list of parameter sets ({{name: value}}), got {configs!r}")
    checked = []
    for index, config in enumerate(configs):
        if not isinstance(config, Mapping) or not config:
            raise ConfigError("enqueue", f"item {index} must be a non-empty {{name: value}} mapping, got {config!r}")
        params = {}
        for name, value in config.items():
            if name not in space:
                raise ConfigError("enqueue", f"item {index}: {name!r} is not a parameter of the space "
                                             f"({', '.join(space)})")
            if isinstance(space[name], Float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # lr: 1 in YAML
            if not space[name].contains(value):
                bounds = ", ".join(f"{key}={v}" for key, v in space.describe()[name].items())
                raise ConfigError("enqueue", f"item {index}: {name}={value!r} is outside the space ({bounds})")
            params[name] = value
        decided = {name for name in params if set(space.conditions.get(name, {})) <= set(params)}
        inactive = sorted(decided - space.active(params))
        if inactive:  # its parents are given, at values that switch it off
            parents = ", ".join(f"{p}={params[p]!r}" for p in space.conditions[inactive[0]])
            raise ConfigError("enqueue", f"item {index}: {inactive[0]} is inactive when {parents}")
        checked.append(params)
    return checked


class Enqueued(Strategy):
    """``base`` after the ``configs`` given, which run as trials ``0 .. len(configs) - 1``; a parameter a
    configuration leaves out is drawn at random (seeded by the trial number, so a re-run draws the same), and one
    a given value switches off (a conditional space's child) is left out."""

    def __init__(self, base: Strategy, configs: Sequence[Params], plan_name: str):
        super().__init__(base.space, base.seed, base.direction)
        self.base, self.name, self.configs = base, base.name, list(configs)
        self.offset = 0 if plan_name in HISTORY_ALONE else len(self.configs)  # where the base's numbering starts

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        given = [Proposal(self.space.sample(self.rng(k), given=self.configs[k]), {ENQUEUED: "true"})
                 for k in numbers if k < len(self.configs)]
        rest = [k - self.offset for k in numbers if k >= len(self.configs)]
        if not rest:
            return Decision(given)
        decision = self.base.propose(self._view(history), rest)
        return Decision(given + decision.proposals, decision.finished)

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        return self.base.artifacts(self._view(history))

    def max_trials(self) -> int | None:
        most = self.base.max_trials()
        return None if most is None else max(most + self.offset, len(self.configs))

    def fit_budget(self, n_trials: int) -> str | None:
        if n_trials < len(self.configs):
            raise ConfigError("n_trials", f"must be at least the {len(self.configs)} enqueued trials, got {n_trials}")
        return self.base.fit_budget(n_trials - self.offset) if n_trials > self.offset else None

    def _view(self, history: Sequence[Trial]) -> list[Trial]:
        """The history as the base numbers it: a plan's own trials renumbered from 0, without the enqueued."""
        if not self.offset:
            return list(history)
        return [dataclasses.replace(t, number=t.number - self.offset) for t in history if t.number >= self.offset]


class WarmStarted(Strategy):
    """``base`` shown the ``prior`` trials (an earlier study's, renumbered -1, -2, ...) before the history.

    Two tasks' values are on different scales (one dataset's accuracies all above another's), and a strategy
    shown both raw takes the earlier study's trials for the best ones for ever: TPE's good set and a GP's
    incumbent never leave them. So by default (``values="quantile"``) each study's completed values are shown as
    their normal quantiles within that study, Phi^-1((rank - 1/2) / n) (the Gaussian copula transform of Salinas
    et al., ICML 2020): the order within each study is kept and both span the same range, so the study's own
    best trials compete with the earlier study's best. ``values="raw"`` shows them as recorded (a rerun of the
    same task, where the scales agree). Only what the strategy sees changes; MLflow keeps the recorded values.
    """

    def __init__(self, base: Strategy, prior: Sequence[Trial], source: str, values: str = "quantile"):
        super().__init__(base.space, base.seed, base.direction)
        if values not in WARM_VALUES:
            raise ConfigError("warm_start_values", f"must be one of {list(WARM_VALUES)}, got {values!r}")
        self.base, self.name, self.budget_note, self.source = base, base.name, base.budget_note, source
        self.values = values
        renumbered = [dataclasses.replace(t, number=-1 - i, run_id="", tags={**t.tags, WARM_START_FROM: source})
                      for i, t in enumerate(prior)]
        self.prior = renumbered if values == "raw" else _quantiles(renumbered)

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        return self.base.propose(self._view(history), numbers)

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        return self.base.artifacts(self._view(history))

    def max_trials(self) -> int | None:
        return self.base.max_trials()

    def fit_budget(self, n_trials: int) -> str | None:
        return self.base.fit_budget(n_trials)

    def _view(self, history: Sequence[Trial]) -> list[Trial]:
        return [*self.prior, *(history if self.values == "raw" else _quantiles(history))]


def _quantiles(trials: Sequence[Trial]) -> list[Trial]:
    """``trials`` with each finite completed value replaced by its normal quantile among them (ties share one)."""
    scored = [i for i, t in enumerate(trials) if t.state is TrialState.COMPLETE and t.value is not None
              and math.isfinite(t.value)]
    if not scored:
        return list(trials)
    import scipy.stats  # here: every study imports this module, few warm-start (scipy.stats costs start-up)

    ranks = scipy.stats.rankdata([trials[i].value for i in scored])
    shown = dict(zip(scored, scipy.stats.norm.ppf((ranks - 0.5) / len(scored))))
    return [dataclasses.replace(t, value=float(shown[i])) if i in shown else t for i, t in enumerate(trials)]


def prior_trials(trials: Sequence[Trial], space: SearchSpace) -> list[Trial]:
    """The finished trials of an earlier study that the current space holds, reduced to its parameters: a trial
    missing an active one, or with a value outside it, cannot be placed and is left out."""
    kept = []
    for trial in trials:
        params = {name: value for name, value in trial.params.items() if name in space}
        if trial.finished and trial.number >= 0 and space.contains(params):
            kept.append(dataclasses.replace(trial, params=params))
    return kept
