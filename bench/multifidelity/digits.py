"""The digits learning-curve table (``digits_table``) as a benchmark problem: a searcher picks a grid point.

The table is a full grid (``digits_table.GRID``, 288 configurations), so the space the searchers see is
the grid's real dimensions and every point they can propose is in the table:

- ``lr`` is a log-uniform float over ``[1e-4 / 10^0.25, 1 * 10^0.25]``, snapped to the nearest of the
  nine half-decade levels in log (the range reaches half a step past the end levels, so each level owns
  an equal share of the log range);
- ``width``, ``depth``, ``batch_size``, ``weight_decay`` and ``dropout`` (two levels each) are choices.

A trial is one configuration and one of its three training seeds: ``trial_seed % 3``, where
``trial_seed`` is ``hpo_tune.trial.trial_seed(study seed, trial number)`` (what the project hands its
objectives; the Optuna runs use the same function of their seed and trial number). Its epoch-e value is that
seed's recorded validation accuracy after epoch e: **maximised**. The truth of a configuration is its mean
final (epoch-40) accuracy over the three seeds; regret is the table's best such mean minus the incumbent's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from bench.multifidelity.digits_table import PATH
from hpo_tune.space import Choice, LogFloat, Params, SearchSpace
from hpo_tune.trial import Direction

LOG_DIMENSIONS = ("lr",)  # the others are choices


def load(path=PATH) -> dict[str, np.ndarray]:
    with np.load(path) as table:
        return {key: table[key] for key in table.files}


@dataclass(frozen=True)
class DigitsTable:
    """The benchmark problem over the table at ``path``."""

    path: str = str(PATH)
    name: str = "digits"
    direction: Direction = Direction.MAXIMIZE
    table: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.table:
            self.table.update(load(self.path))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.table["names"])

    @property
    def epochs(self) -> int:
        return int(self.table["curves"].shape[2])

    def levels(self, name: str) -> np.ndarray:
        return self.table[f"levels_{name}"]

    def space(self) -> SearchSpace:
        dims = {}
        for name in self.names:
            levels = self.levels(name)
            if name in LOG_DIMENSIONS:
                half = np.log(levels[1] / levels[0]) / 2
                dims[name] = LogFloat(float(levels[0] * np.exp(-half)), float(levels[-1] * np.exp(half)))
            else:
                values = [int(v) if float(v).is_integer() and name != "dropout" else float(v) for v in levels]
                dims[name] = Choice(tuple(values))
        return SearchSpace(dims)

    def index(self, params: Params) -> int:
        """The table row of the grid point nearest to ``params`` (in log for ``LOG_DIMENSIONS``)."""
        position = []
        for name in self.names:
            levels, value = self.levels(name), float(params[name])
            distance = np.abs(np.log(levels) - np.log(value)) if name in LOG_DIMENSIONS else np.abs(levels - value)
            position.append(int(np.argmin(distance)))
        return int(np.ravel_multi_index(position, [len(self.levels(n)) for n in self.names]))

    @cached_property
    def means(self) -> np.ndarray:
        """Each configuration's mean final accuracy over the seeds."""
        return self.table["curves"][:, :, -1].mean(axis=1)

    @property
    def reference(self) -> float:
        """The best truth in the table."""
        return float(self.means.max())

    def value(self, params: Params, trial_seed: int, epoch: int) -> float:
        seeds = self.table["curves"].shape[1]
        return float(self.table["curves"][self.index(params), trial_seed % seeds, epoch - 1])

    def truth(self, params: Params) -> float:
        return float(self.means[self.index(params)])

    def regret(self, params: Params) -> float:
        return self.reference - self.truth(params)

    def epoch_seconds(self, params: Params, trial_seed: int) -> np.ndarray:
        seeds = self.table["curves"].shape[1]
        return self.table["epoch_seconds"][self.index(params), trial_seed % seeds]
