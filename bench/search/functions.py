"""Synthetic test functions with known minima, as search spaces the strategies take.

- ``branin`` (2-D, x1 in [-5, 10], x2 in [0, 15]): minimum s t = 10 / (8 pi) = 0.397887... at three
  points, (-pi, 12.275), (pi, 2.275) and (3 pi, 2.475), where the square vanishes and cos(x1) = -1.
- ``hartmann6`` (6-D, [0, 1]^6): minimum -3.32236801141551 at the published minimiser (Surjanovic &
  Bingham's library). Every term is a Gaussian bump centred inside the box, so projecting a point onto
  the box never raises the value: the minimum over R^6 is the box's.
- ``mixed``: Hartmann-6 with two integer and two string-choice dimensions,
  ``amplitude * H6(x) + offset``. ``k3``, ``k4`` in 0..20 stand for x3, x4 on a lattice of step 0.05
  laid through the minimiser's coordinate (x_j = x*_j + (k_j - k*_j) / 20, k*_j = round(20 x*_j)), so
  the minimiser is on it; ``amplitude`` is ``half`` (0.5) or ``full`` (1); ``offset`` is ``large`` (1),
  ``zero`` (0) or ``small`` (0.5). H6 < 0 everywhere, so the minimum is at ``full``/``zero`` and equals
  H6's: -3.32236801141551 (a test checks it by brute force).

Each comes plain and ``_noisy``: the observed value is the function plus Gaussian noise of sd
``NOISE_SD`` (Branin 1.0, Hartmann-6 and mixed 0.1: about 0.3 % and 3 % of each range), drawn from
(seed, trial number), so every searcher of one seed sees the same noise at the same trial number.
Regret is always of the noise-free function.

t_sampling needs every dimension to be a choice; it runs on discretised spaces (``runner.discretise``:
each numeric dimension becomes ``--levels`` values, default 5, the midpoints of equal cells of its
range). Its regret is still against the true minimum, so it includes the lattice's own floor
(``floor()``, the best value on the lattice minus the minimum; with 5 levels Branin 0.73, Hartmann-6
0.21, mixed 0.19; with 3 levels 2.02, 1.28 and 1.37). Fewer levels let t_sampling finish on a smaller
budget (budget-aware, it refuses one too small for its stages) at the price of a higher floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.search.runner import LEVELS, discretise
from hpo_tune.space import Params, SearchSpace
from hpo_tune.trial import Direction

BRANIN_MINIMUM = 10 / (8 * math.pi)
BRANIN_ARGMINS = ({"x1": -math.pi, "x2": 12.275}, {"x1": math.pi, "x2": 2.275}, {"x1": 3 * math.pi, "x2": 2.475})

H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])
H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
H6_MINIMUM = -3.32236801141551
H6_ARGMIN = (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730053)

LATTICE = 20  # integer levels per unit of x in the mixed function
K_STAR = {j: round(LATTICE * H6_ARGMIN[j]) for j in (2, 3)}  # the lattice index of x3*, x4* (0-based j)
AMPLITUDES = {"half": 0.5, "full": 1.0}
OFFSETS = {"large": 1.0, "zero": 0.0, "small": 0.5}


def _unit(name: str) -> dict[str, Any]:
    return {name: {"type": "float", "low": 0.0, "high": 1.0}}


SPACES: dict[str, dict[str, Any]] = {
    "branin": {"x1": {"type": "float", "low": -5.0, "high": 10.0}, "x2": {"type": "float", "low": 0.0, "high": 15.0}},
    "hartmann6": {k: v for j in range(1, 7) for k, v in _unit(f"x{j}").items()},
    "mixed": {**_unit("x1"), **_unit("x2"), "k3": {"type": "int", "low": 0, "high": LATTICE},
              "k4": {"type": "int", "low": 0, "high": LATTICE}, **_unit("x5"), **_unit("x6"),
              "amplitude": {"type": "choice", "values": list(AMPLITUDES)},
              "offset": {"type": "choice", "values": list(OFFSETS)}},
}
MINIMA = {"branin": BRANIN_MINIMUM, "hartmann6": H6_MINIMUM, "mixed": H6_MINIMUM}
ARGMINS: dict[str, tuple[Params, ...]] = {
    "branin": BRANIN_ARGMINS,
    "hartmann6": ({f"x{j + 1}": x for j, x in enumerate(H6_ARGMIN)},),
    "mixed": ({"x1": H6_ARGMIN[0], "x2": H6_ARGMIN[1], "k3": K_STAR[2], "k4": K_STAR[3], "x5": H6_ARGMIN[4],
               "x6": H6_ARGMIN[5], "amplitude": "full", "offset": "zero"},),
}
NOISE_SD = {"branin": 1.0, "hartmann6": 0.1, "mixed": 0.1}
FUNCTIONS = tuple(name + suffix for name in SPACES for suffix in ("", "_noisy"))
NOISE_STREAM = 7_919  # keeps the noise draws apart from the strategies' own rng(seed, number)


def base(function: str) -> str:
    """``branin_noisy`` -> ``branin``."""
    return function.removesuffix("_noisy")


def branin(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def hartmann6(x: np.ndarray) -> np.ndarray:
    """H6 of points ``x`` (..., 6)."""
    x = np.asarray(x, dtype=float)
    inner = np.einsum("ij,...ij->...i", H6_A, (x[..., None, :] - H6_P) ** 2)
    return -(H6_ALPHA * np.exp(-inner)).sum(axis=-1)


def mixed(x1: Any, x2: Any, k3: Any, k4: Any, x5: Any, x6: Any, amplitude: Any, offset: Any) -> np.ndarray:
    """The mixed function, elementwise over arrays (choices as arrays of their names)."""
    x3 = H6_ARGMIN[2] + (np.asarray(k3) - K_STAR[2]) / LATTICE
    x4 = H6_ARGMIN[3] + (np.asarray(k4) - K_STAR[3]) / LATTICE
    h6 = hartmann6(np.stack(np.broadcast_arrays(x1, x2, x3, x4, x5, x6), axis=-1))
    scale = np.vectorize(AMPLITUDES.__getitem__, otypes=[float])(amplitude)
    shift = np.vectorize(OFFSETS.__getitem__, otypes=[float])(offset)
    return scale * h6 + shift


def evaluate(function: str, columns: Mapping[str, Any]) -> np.ndarray:
    """The noise-free values of points given as one array (or scalar) per parameter."""
    name = base(function)
    if name == "branin":
        return branin(np.asarray(columns["x1"]), np.asarray(columns["x2"]))
    if name == "hartmann6":
        return hartmann6(np.stack(np.broadcast_arrays(*(columns[f"x{j}"] for j in range(1, 7))), axis=-1))
    return mixed(**columns)


def true_value(function: str, params: Mapping[str, Any]) -> float:
    """The noise-free value of ``params`` (regret is always measured on it)."""
    return float(evaluate(function, params))


def observed_value(function: str, params: Mapping[str, Any], seed: int, number: int) -> float:
    """What a searcher sees for trial ``number``: the true value, plus noise for a ``_noisy`` function."""
    value = true_value(function, params)
    if function.endswith("_noisy"):
        value += NOISE_SD[base(function)] * float(np.random.default_rng([seed, number, NOISE_STREAM]).normal())
    return value


def space(function: str) -> SearchSpace:
    return SearchSpace.from_config(SPACES[base(function)])


def floor(function: str, levels: int = LEVELS) -> float:
    """The lowest true value on the discretised space's lattice, minus the minimum: t_sampling's best regret."""
    lattice = discretise(space(function), levels)
    grids = np.meshgrid(*(np.array(dim.values) for dim in lattice.values()), indexing="ij")
    return float(evaluate(function, dict(zip(lattice, grids))).min()) - MINIMA[base(function)]


@dataclass(frozen=True)
class Synthetic:
    """A synthetic function as a bench problem: minimised, regret on the noise-free value."""

    name: str
    direction: Direction = Direction.MINIMIZE

    @property
    def minimum(self) -> float:
        return MINIMA[base(self.name)]

    def space(self) -> SearchSpace:
        return space(self.name)

    def observe(self, params: Params, seed: int, number: int) -> float:
        return observed_value(self.name, params, seed, number)

    def truth(self, params: Params, observed: float) -> float:
        return true_value(self.name, params)
