"""Grid search (brute force): the product of every dimension's grid values, each exactly once."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Direction, Proposal, Trial


class GridSearch(Strategy):
    """Trial ``k`` runs grid point ``k`` in a fixed order (the last dimension varies fastest).

    Continuous dimensions contribute ``points`` values (log-spaced for log dimensions); choices
    contribute all their values. ``repeats`` runs each point that many times in a row, as the
    seed-000 brute force does to average out training noise.
    """

    name = "grid"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, points: int = 5, repeats: int = 1):
        super().__init__(space, seed, direction)
        space.refuse_conditions("grid", "runs the product of every dimension's values")
        if points < 1:
            raise ConfigError("strategy.points", f"must be >= 1, got {points}")
        if repeats < 1:
            raise ConfigError("strategy.repeats", f"must be >= 1, got {repeats}")
        self.repeats = repeats
        axes = [dim.grid(points) for dim in space.values()]
        self.points = [dict(zip(space, values)) for values in itertools.product(*axes)]

    def max_trials(self) -> int:
        return len(self.points) * self.repeats

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        inside = [k for k in numbers if k < self.max_trials()]
        return Decision(
            [Proposal(self.points[k // self.repeats]) for k in inside],
            finished=len(inside) < len(numbers),
        )
