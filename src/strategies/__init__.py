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
    name: str, space: SearchSpace, seed: int, direction: Direction, options: Mapping[str, Any] | None = None
) -> Strategy:
    """Build a strategy, naming the offending config key when the name or an option is wrong."""
    if name not in STRATEGIES:
        raise ConfigError("strategy.name", f"unknown strategy {name!r}; use one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "space", "seed", "direction"}
    for option in options or {}:
        if option not in accepted:
            raise ConfigError(f"strategy.{option}", f"not an option of strategy {name!r} (options: {sorted(accepted)})")
    return cls(space, seed, direction, **(options or {}))


__all__ = ["STRATEGIES", "Decision", "Strategy", "make_strategy"]
