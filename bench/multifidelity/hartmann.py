"""The multi-fidelity Hartmann-6 of Kandasamy et al. (MF-GP-UCB, NeurIPS 2016; BOCA, ICML 2017), minimised.

The paper's function is maximised: ``f(x, z) = sum_i alpha'_i(z) exp(-sum_j A_ij (x_j - P_ij)^2)`` on
``[0, 1]^6`` with the usual Hartmann-6 ``A``, ``P`` and ``alpha = (1, 1.2, 3, 3.2)``, and the fidelity ``z``
in ``[0, 1]`` shifting the weights: ``alpha'(z) = alpha - 0.1 (1 - z)`` (each of the four; ``z = 1`` is the
target function). Here it is the negation, ``h(x, z) = -f(x, z)``, to be **minimised** like the search bench's
Hartmann-6: at full fidelity it is Hartmann-6 itself, minimum ``-3.32236801141551`` at the published
minimiser. A lower fidelity lifts every point by ``0.1 (1 - z) sum_i exp(...)`` (about 0.1 at most points): the
curve of a configuration falls linearly to its final value, and points are lifted unequally, so the
ranking at a low fidelity is close to, not exactly, the final one.

A trial of ``EPOCHS`` (27 by default: rungs 1, 3, 9, 27 for a reduction factor of 3) "epochs" reports
``h(x, epoch / EPOCHS) + noise`` at epochs 1..EPOCHS; the noise is Gaussian with sd ``NOISE_SD`` (0.02),
one independent draw per epoch from a generator seeded by the trial's seed, so a resumed trial sees
the same curve. Regret is the noise-free ``h(x, 1)`` of the incumbent minus the minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.search.functions import H6_A, H6_ALPHA, H6_ARGMIN, H6_MINIMUM, H6_P, SPACES
from hpo_tune.space import Params, SearchSpace
from hpo_tune.trial import Direction

EPOCHS = 27
NOISE_SD = 0.02
SHIFT = 0.1  # alpha_delta of the paper: alpha' = alpha - SHIFT * (1 - z)
NOISE_STREAM = 104_729
ARGMIN = dict(zip((f"x{j}" for j in range(1, 7)), H6_ARGMIN))


def mf_hartmann6(x: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """``h(x, z)`` for points ``x`` [..., 6] in [0, 1]^6 and fidelities ``z`` in [0, 1] (broadcast)."""
    x = np.asarray(x, float)
    bumps = np.exp(-np.sum(H6_A * (x[..., None, :] - H6_P) ** 2, axis=-1))  # [..., 4]
    alpha = H6_ALPHA - SHIFT * (1 - np.asarray(z, float))[..., None]
    return -np.sum(alpha * bumps, axis=-1)


@dataclass(frozen=True)
class MFHartmann:
    """The benchmark problem: a trial's curve is ``h(x, e / epochs)`` plus noise, e = 1..epochs."""

    epochs: int = EPOCHS
    noise_sd: float = NOISE_SD
    name: str = "hartmann6_mf"
    direction: Direction = Direction.MINIMIZE
    reference: float = H6_MINIMUM  # the best truth any configuration has

    def space(self) -> SearchSpace:
        return SearchSpace.from_config(SPACES["hartmann6"])

    def point(self, params: Params) -> np.ndarray:
        return np.array([params[f"x{j}"] for j in range(1, 7)], float)

    def value(self, params: Params, trial_seed: int, epoch: int) -> float:
        """What the trial seeded ``trial_seed`` observes after ``epoch`` (1..epochs)."""
        noise = np.random.default_rng([NOISE_STREAM, trial_seed]).normal(0.0, self.noise_sd, self.epochs)
        return float(mf_hartmann6(self.point(params), epoch / self.epochs) + noise[epoch - 1])

    def truth(self, params: Params) -> float:
        """The noise-free value at full fidelity: what the regret of a picked configuration is of."""
        return float(mf_hartmann6(self.point(params), 1.0))

    def regret(self, params: Params) -> float:
        return self.truth(params) - self.reference

    def epoch_seconds(self, params: Params, trial_seed: int) -> np.ndarray | None:
        return None  # no recorded times: the wall-time replay is the digits table's
