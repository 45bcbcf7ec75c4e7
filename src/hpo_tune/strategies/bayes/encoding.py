"""The search space as the surrogate sees it: points of a relaxed unit cube, and their projection onto runnable
configurations.

A numeric dimension takes one column, mapped to [0, 1] (log dimensions in log space); a choice of m values takes
a one-hot block of m columns. The cube between those points is a relaxation: the optimiser may visit any point of
it, but the acquisition is only evaluated at projected points (ints snapped to their step, each one-hot block to
the one-hot of its largest column), so it scores configurations that can actually run (Garrido-Merchan and
Hernandez-Lobato 2020).

In a conditional space an inactive dimension's columns hold ``INACTIVE`` (-1, outside the unit range), as SMAC
imputes inactive hyperparameters for its Gaussian process: the surrogate sees one consistent vector per
configuration, two configurations that differ only in an inactive dimension are the same point, and an inactive
dimension is far from each of its values. Projection imputes them too (a candidate's inactive columns are reset,
a newly active one starts at its lowest level), so the acquisition scores configurations that can run, and a
decoded point leaves inactive dimensions out.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from hpo_tune.space import Choice, Dimension, Float, Int, LogFloat, Params, SearchSpace

INACTIVE = -1.0  # every column of an inactive dimension


class Encoding:
    """Params <-> points of the unit cube.

    ``blocks[name]``: the slice of a dimension's columns; ``continuous``: the columns of float dimensions;
    ``size``: how many configurations there are when every dimension is discrete (for a conditional space an upper
    bound: the product counts inactive dimensions' levels), else None.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.blocks: dict[str, slice] = {}
        start = 0
        for name, dim in space.items():
            width = len(dim.values) if isinstance(dim, Choice) else 1
            self.blocks[name] = slice(start, start + width)
            start += width
        self.width = start
        self.continuous = np.array([self.blocks[name].start for name, dim in space.items() if isinstance(dim, Float)],
                                   dtype=int)
        self.size = None if self.continuous.size else math.prod(_count(dim) for dim in space.values())

    def encode(self, params: Params) -> np.ndarray:
        point = np.zeros(self.width)
        for name, dim in self.space.items():
            block = self.blocks[name]
            if name not in params:
                point[block] = INACTIVE
            elif isinstance(dim, Choice):
                point[block.start + _level(dim, params[name])] = 1.0
            else:
                point[block.start] = to_unit(dim, params[name])
        return point

    def decode(self, point: np.ndarray) -> Params:
        """The configuration at a projected ``point`` (an unprojected one is rounded the same way), without its
        inactive dimensions."""
        params: Params = {}
        for name, dim in self.space.items():
            block = point[self.blocks[name]]
            if isinstance(dim, Choice):
                params[name] = dim.values[int(np.argmax(block))]
            elif isinstance(dim, Int):
                params[name] = dim.low + int(_index(dim, block[0])) * dim.step
            else:
                params[name] = float(np.clip(from_unit(dim, block[0]), dim.low, dim.high))
        return self.space.only_active(params)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Rows of the relaxed cube moved to the configurations they stand for (a copy)."""
        projected = np.clip(points, 0.0, 1.0)
        for name, dim in self.space.items():
            block = self.blocks[name]
            if isinstance(dim, Choice):
                projected[:, block] = np.eye(len(dim.values))[np.argmax(projected[:, block], axis=1)]
            elif isinstance(dim, Int):
                projected[:, block.start] = to_unit(dim, dim.low + _index(dim, projected[:, block.start]) * dim.step)
        return self._impute(projected)

    def _impute(self, projected: np.ndarray) -> np.ndarray:
        """Projected rows (changed in place) with the columns of each dimension inactive in its row at ``INACTIVE``;
        parents are read at their projected levels."""
        if not self.space.conditions:
            return projected
        active: dict[str, np.ndarray] = {}
        for name in self.space.parents_first:
            on = np.ones(len(projected), dtype=bool)
            for parent, allowed in self.space.conditions.get(name, {}).items():
                dim, block = self.space[parent], self.blocks[parent]
                level = np.argmax(projected[:, block], axis=1) if isinstance(dim, Choice) else _index(
                    dim, projected[:, block.start])
                on &= active[parent] & np.isin(level, [_level(dim, value) if isinstance(dim, Choice)
                                                       else (value - dim.low) // dim.step for value in allowed.values])
            active[name] = on
            projected[~on, self.blocks[name]] = INACTIVE
        return projected

    def grid(self) -> np.ndarray:
        """Every configuration of a space whose dimensions are all discrete, encoded (``size`` rows; in a conditional
        space each configuration once, so fewer)."""
        levels = [np.eye(len(dim.values)) if isinstance(dim, Choice)
                  else to_unit(dim, dim.low + dim.step * np.arange(_count(dim)))[:, None]
                  for dim in self.space.values()]
        rows = np.array([np.concatenate(row) for row in itertools.product(*levels)]).reshape(-1, self.width)
        return np.unique(self._impute(rows), axis=0) if self.space.conditions else rows

    def neighbours(self, point: np.ndarray) -> np.ndarray:
        """Projected points one discrete move from ``point``: an int one step up or down, a choice at another level
        (in a conditional space projected again: a move may switch a child on or off)."""
        rows = []
        for name, dim in self.space.items():
            block = self.blocks[name]
            if isinstance(dim, Choice):
                at = int(np.argmax(point[block]))
                moves = [np.eye(len(dim.values))[j] for j in range(len(dim.values)) if j != at]
            elif isinstance(dim, Int):
                at = int(_index(dim, point[block.start]))
                moves = [to_unit(dim, dim.low + j * dim.step) for j in (at - 1, at + 1) if 0 <= j < _count(dim)]
            else:
                continue
            for move in moves:
                row = point.copy()
                row[block] = move
                rows.append(row)
        moved = np.array(rows).reshape(-1, self.width)
        return self.project(moved) if self.space.conditions else moved


def _level(dim: Choice, value: object) -> int:
    """The index of ``value`` among the choice's values (with its type: True is not 1)."""
    return next(j for j, v in enumerate(dim.values) if v == value and type(v) is type(value))


def is_log(dim: Dimension) -> bool:
    return isinstance(dim, LogFloat) or (isinstance(dim, Int) and dim.log)


def to_unit(dim: Float | Int, value: float | np.ndarray) -> np.ndarray:
    """Values of a numeric dimension in [0, 1] (log dimensions in log space); 0 for a one-value range."""
    warp = np.log if is_log(dim) else np.asarray
    low, high = warp(float(dim.low)), warp(float(dim.high))
    return (warp(np.asarray(value, dtype=float)) - low) / (high - low) if high > low else np.zeros(np.shape(value))


def from_unit(dim: Float | Int, units: float | np.ndarray) -> np.ndarray:
    """The numeric dimension's values at ``units``, unrounded (ints are snapped by ``Encoding.project``)."""
    if is_log(dim):
        low, high = math.log(dim.low), math.log(dim.high)
        return np.exp(low + np.clip(units, 0.0, 1.0) * (high - low))
    return dim.low + np.clip(units, 0.0, 1.0) * (dim.high - dim.low)


def _count(dim: Dimension) -> int:
    return len(dim.values) if isinstance(dim, Choice) else (dim.high - dim.low) // dim.step + 1


def _index(dim: Int, units: float | np.ndarray) -> np.ndarray:
    """The step index nearest the value at ``units`` (nearest in value, also for log ints)."""
    return np.clip(np.round((from_unit(dim, units) - dim.low) / dim.step), 0, _count(dim) - 1).astype(int)
