"""Strategies by name; each is a pure function of the trial history (see ``base``)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from src.errors import ConfigError
from src.space import SearchSpace
from src.strategies.base import Decision, Strategy
from src.strategies.bayes import GammaBO, GaussianProcessBO
from src.strategies.factorial import FactorialGrid
from src.strategies.grid import GridSearch
from src.strategies.per_epoch import PerEpoch
from src.strategies.random import RandomSearch
from src.strategies.t_sampling import TSampling
from src.strategies.tpe import OptunaTPE
from src.trial import Direction

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (GridSearch, RandomSearch, TSampling, GaussianProcessBO, GammaBO, PerEpoch, FactorialGrid, OptunaTPE)
}


def make_strategy(
    name: str, space: SearchSpace, seed: int, direction: Direction, options: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
) -> Strategy:
    """Build a strategy with its plan fitted to the budget ``n_trials`` (None: unlimited), naming the offending
    config key when the name, an option or the budget is wrong.

    The budget is applied here, once, so that no strategy runs with a plan made for another budget. The
    strategy's ``budget_note`` is the one line saying what the budget changed in its plan (None if nothing).
    """
    if name not in STRATEGIES:
        raise ConfigError("strategy.name", f"unknown strategy {name!r}; use one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "space", "seed", "direction"}
    for option in options or {}:
        if option not in accepted:
            raise ConfigError(f"strategy.{option}", f"not an option of strategy {name!r} (options: {sorted(accepted)})")
    strategy = cls(space, seed, direction, **(options or {}))
    strategy.budget_note = None if n_trials is None else strategy.fit_budget(n_trials)
    return strategy


__all__ = ["STRATEGIES", "Decision", "Strategy", "make_strategy"]
