"""The search space as the surrogate sees it: points of a relaxed unit cube, and their projection onto runnable
configurations.

A numeric dimension takes one column, mapped to [0, 1] (log dimensions in log space). A choice of numbers is ordinal
by default (``numeric_choices: ordinal``): one column holding its rank, level j of m at j / (m - 1), so
``batch_size: [16, 32, 64, 128]`` is a lattice of four points on a line and the kernel can learn that 32 is between
16 and 64; ``categorical`` treats it as any other choice. A choice of anything else (strings, booleans) is
categorical: a one-hot block of m columns. With ``choice_kernel: hamming`` the block's columns share one length
scale in the kernel (``groups``), so two levels are equally far apart whichever they are, a Hamming kernel, and a
choice costs the kernel fit one hyperparameter; with ``per_level`` each column has its own, so some levels can lie
closer together than others, at one hyperparameter per level. ``auto`` takes ``hamming`` on a discrete space and
``per_level`` where a dimension is continuous (the README's search-quality section has the figures). The cube
between those points is a relaxation: the optimiser may visit any point of it, but the acquisition is only evaluated
at projected points (ints and ordinal choices snapped to their levels, each one-hot block to the one-hot of its
largest column), so it scores configurations that can actually run (Garrido-Merchan and Hernandez-Lobato 2020).

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

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Dimension, Float, Int, LogFloat, Params, SearchSpace

INACTIVE = -1.0  # every column of an inactive dimension
NUMERIC_CHOICES = ("ordinal", "categorical")  # how a choice of numbers is encoded
CHOICE_KERNELS = ("hamming", "per_level")  # one length scale per one-hot block, or one per column


class Encoding:
    """Params <-> points of the unit cube.

    ``blocks[name]``: the slice of a dimension's columns; ``groups``: for each column, the index of its length scale
    in the kernel (its dimension's, or under ``per_level`` a one-hot column's own); ``continuous``: the columns of
    float dimensions; ``size``: how many configurations there are when every dimension is discrete (for a
    conditional space an upper bound: the product counts inactive dimensions' levels), else None.
    """

    def __init__(self, space: SearchSpace, numeric_choices: str = "ordinal", choice_kernel: str = "auto"):
        if numeric_choices not in NUMERIC_CHOICES:
            raise ConfigError("strategy.numeric_choices", f"must be one of {NUMERIC_CHOICES}, got {numeric_choices!r}")
        self.space = space
        self.one_hot = {name for name, dim in space.items()
                        if isinstance(dim, Choice) and (numeric_choices == "categorical" or not _numbers(dim))}
        self.blocks: dict[str, slice] = {}
        start = 0
        for name, dim in space.items():
            width = len(dim.values) if name in self.one_hot else 1
            self.blocks[name] = slice(start, start + width)
            start += width
        self.width = start
        self.continuous = np.array([self.blocks[name].start for name, dim in space.items() if isinstance(dim, Float)],
                                   dtype=int)
        if choice_kernel == "auto":
            choice_kernel = "per_level" if self.continuous.size else "hamming"
        if choice_kernel not in CHOICE_KERNELS:
            raise ConfigError("strategy.choice_kernel", f"must be one of {CHOICE_KERNELS} or 'auto', "
                                                        f"got {choice_kernel!r}")
        self.choice_kernel = choice_kernel
        self.groups = (np.repeat(np.arange(len(space)), [b.stop - b.start for b in self.blocks.values()])
                       if choice_kernel == "hamming" else np.arange(self.width))
        self.size = None if self.continuous.size else math.prod(_count(dim) for dim in space.values())
        self._grid: np.ndarray | None = None
        self._level_rows = {name: _read_only(self._build_level_rows(name)) for name, dim in space.items()
                            if not isinstance(dim, Float)}  # built once: encoding a long history reads them per trial

    def encode(self, params: Params) -> np.ndarray:
        point = np.zeros(self.width)
        for name, dim in self.space.items():
            block = self.blocks[name]
            if name not in params:
                point[block] = INACTIVE
            elif isinstance(dim, Choice):
                point[block] = self.level_rows(name)[_level(dim, params[name])]
            else:
                point[block.start] = to_unit(dim, params[name])
        return point

    def decode(self, point: np.ndarray) -> Params:
        """The configuration at a projected ``point`` (an unprojected one is rounded the same way), without its
        inactive dimensions."""
        params: Params = {}
        for name, dim in self.space.items():
            if isinstance(dim, Choice):
                params[name] = dim.values[int(self.levels_at(name, point[None, :])[0])]
            elif isinstance(dim, Int):
                params[name] = dim.low + int(self.levels_at(name, point[None, :])[0]) * dim.step
            else:
                params[name] = float(np.clip(from_unit(dim, point[self.blocks[name].start]), dim.low, dim.high))
        return self.space.only_active(params)

    def level_rows(self, name: str) -> np.ndarray:
        """A discrete dimension's levels as its columns encode them, one row each (lowest level first; read-only)."""
        return self._level_rows[name]

    def _build_level_rows(self, name: str) -> np.ndarray:
        dim = self.space[name]
        if name in self.one_hot:
            return np.eye(len(dim.values))
        if isinstance(dim, Choice):
            return _ranks(len(dim.values))[:, None]
        return to_unit(dim, dim.low + dim.step * np.arange(_count(dim)))[:, None]

    def levels_at(self, name: str, points: np.ndarray) -> np.ndarray:
        """The level of a discrete dimension that each row stands for (the nearest one)."""
        dim, block = self.space[name], self.blocks[name]
        if name in self.one_hot:
            return np.argmax(points[:, block], axis=1)
        if isinstance(dim, Choice):
            top = len(dim.values) - 1
            return np.clip(np.round(points[:, block.start] * top), 0, top).astype(int)
        return _index(dim, points[:, block.start])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Rows of the relaxed cube moved to the configurations they stand for (a copy)."""
        projected = np.clip(points, 0.0, 1.0)
        for name, dim in self.space.items():
            if not isinstance(dim, Float):
                projected[:, self.blocks[name]] = self.level_rows(name)[self.levels_at(name, projected)]
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
                dim = self.space[parent]
                levels = [_level(dim, value) if isinstance(dim, Choice) else (value - dim.low) // dim.step
                          for value in allowed.values]
                on &= active[parent] & np.isin(self.levels_at(parent, projected), levels)
            active[name] = on
            projected[~on, self.blocks[name]] = INACTIVE
        return projected

    def grid(self) -> np.ndarray:
        """Every configuration of a space whose dimensions are all discrete, encoded (``size`` rows; in a conditional
        space each configuration once, so fewer), built once (callers must not change it)."""
        if self._grid is None:
            levels = [self.level_rows(name) for name in self.space]
            rows = np.array([np.concatenate(row) for row in itertools.product(*levels)]).reshape(-1, self.width)
            self._grid = np.unique(self._impute(rows), axis=0) if self.space.conditions else rows
        return self._grid

    def neighbours(self, point: np.ndarray) -> np.ndarray:
        """Projected points one discrete move from ``point``: an int or ordinal choice one level up or down, a
        categorical choice at another level (in a conditional space projected again: a move may switch a child on
        or off)."""
        rows = []
        for name, dim in self.space.items():
            if isinstance(dim, Float):
                continue
            block, levels = self.blocks[name], self.level_rows(name)
            at = int(self.levels_at(name, point[None, :])[0])
            others = (j for j in range(len(levels)) if j != at) if name in self.one_hot else (at - 1, at + 1)
            for j in others:
                if 0 <= j < len(levels):
                    row = point.copy()
                    row[block] = levels[j]
                    rows.append(row)
        moved = np.array(rows).reshape(-1, self.width)
        return self.project(moved) if self.space.conditions else moved


def _numbers(dim: Choice) -> bool:
    """Whether every value of a choice is a number (booleans are not), so that its values have an order."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in dim.values)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _ranks(m: int) -> np.ndarray:
    """Where an ordinal choice's m levels sit in its column."""
    return np.linspace(0.0, 1.0, m) if m > 1 else np.zeros(1)


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
