"""Strategies by name; each is a pure function of the trial history (see ``base``)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.space import Params, SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.strategies.fidelity import FIDELITIES, RungFitted
from hpo_tune.strategies.prior import HISTORY_ALONE, Enqueued
from hpo_tune.trial import Direction

# name -> its class, or where it is ("module:Class"), imported when a study uses it: a worker of a random study
# does not pay for scikit-learn, statsmodels, pandas and Optuna (about a second of start-up on this machine)
STRATEGIES: dict[str, str | type[Strategy]] = {
    name: f"hpo_tune.strategies.{where}" for name, where in {
        "grid": "grid:GridSearch", "random": "random:RandomSearch", "t_sampling": "t_sampling:TSampling",
        "gp_bo": "bayes:GaussianProcessBO", "gamma_bo": "bayes:GammaBO", "per_epoch": "per_epoch:PerEpoch",
        "factorial_grid": "factorial:FactorialGrid", "optuna_tpe": "tpe:OptunaTPE", "nsga2": "nsga2:NSGAII",
    }.items()
}
RUNG_FITTED = HISTORY_ALONE  # strategies of the history alone: BOHB's rule fits
BOHB = "bohb"  # optuna_tpe with fidelity: rungs, under its own name (its study names and tags say bohb)
SEVERAL_OBJECTIVES = ("nsga2", "optuna_tpe", "random")  # the strategies that search a study of several objectives


def make_strategy(
    name: str, space: SearchSpace, seed: int, direction: Direction, options: Mapping[str, Any] | None = None,
    n_trials: int | None = None, enqueue: Sequence[Params] = (), directions: Sequence[Direction] = (),
) -> Strategy:
    """Build a strategy with its plan fitted to the budget ``n_trials`` (None: unlimited), naming the offending
    config key when the name, an option or the budget is wrong.

    The budget is applied here, once, so that no strategy runs with a plan made for another budget. The
    strategy's ``budget_note`` is the one line saying what the budget changed in its plan (None if nothing).
    ``fidelity: rungs`` (an option of the strategies in ``RUNG_FITTED``) fits it on a halving pruner's rungs
    (``hpo_tune.strategies.fidelity``); ``final`` (the default) on complete trials. ``enqueue`` (parameter sets,
    checked by ``prior.check_enqueued``) runs first, in the budget (``hpo_tune.strategies.prior``).
    ``directions`` (two or more) makes a study of several objectives, which only some strategies can search.
    """
    if name not in STRATEGIES and name != BOHB:
        raise ConfigError("strategy.name", f"unknown strategy {name!r}; use one of {sorted([*STRATEGIES, BOHB])}")
    options = dict(options or {})
    fidelity = options.pop("fidelity", "rungs" if name == BOHB else "final")
    if fidelity not in FIDELITIES:
        raise ConfigError("strategy.fidelity", f"must be one of {list(FIDELITIES)}, got {fidelity!r}")
    if name == BOHB and fidelity != "rungs":
        raise ConfigError("strategy.fidelity", "bohb fits on rungs: use optuna_tpe for TPE on complete trials")
    label, name = name, "optuna_tpe" if name == BOHB else name
    if fidelity == "rungs" and name not in RUNG_FITTED:
        raise ConfigError("strategy.fidelity", f"rungs: only {list(RUNG_FITTED)} can fit on rungs, not {name!r}")
    cls = strategy_class(name)
    if len(directions) > 1 and (label not in SEVERAL_OBJECTIVES or fidelity == "rungs"):
        raise ConfigError("strategy.name", f"{label!r} optimises one objective; with several use one of "
                                           f"{list(SEVERAL_OBJECTIVES)} (fidelity: final)")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "space", "seed", "direction"}
    for option in options:
        if option not in accepted:
            raise ConfigError(f"strategy.{option}", f"not an option of strategy {label!r} (options: "
                                                    f"{sorted(accepted | {'fidelity'})})")
    strategy = cls(space, seed, direction, **options)
    strategy.directions = tuple(directions) or (direction,)
    if fidelity == "rungs":
        strategy = RungFitted(strategy, name=label)
    if enqueue:
        strategy = Enqueued(strategy, enqueue, name)
    strategy.budget_note = None if n_trials is None else strategy.fit_budget(n_trials)
    return strategy


def strategy_class(name: str) -> type[Strategy]:
    """The class of the strategy ``name`` (a key of ``STRATEGIES``), imported on first use."""
    entry = STRATEGIES[name]
    if isinstance(entry, type):
        return entry
    module, _, cls = entry.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["BOHB", "RUNG_FITTED", "SEVERAL_OBJECTIVES", "STRATEGIES", "Decision", "Strategy", "make_strategy",
           "strategy_class"]
