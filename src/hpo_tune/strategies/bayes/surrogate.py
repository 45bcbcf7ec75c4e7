"""The BOs' surrogate: a GP of standardised (or rank-warped) losses, its Gaussian and Student-t predictives, and EI
(see the package docstring for the formulas)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.linalg import cho_solve, cholesky, solve_triangular
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel

# A hyperparameter at its bound is routine for a small, noiseless toy study. Filtered for scikit-learn's GP
# module once, not around each fit: catch_warnings is process-wide state, and the tables and plots are
# drawn in a background thread while proposals are made in the main one.
warnings.filterwarnings("ignore", category=ConvergenceWarning, module=r"sklearn\.gaussian_process")

GP_RESTARTS = 1  # extra random starts of the marginal-likelihood fit
JITTER = 1e-10  # scikit-learn's default alpha, kept so the surrogate matches its fit
WARPINGS = ("rank", "none")  # what the GP is fitted to: normal scores of the losses' ranks, or standardised losses


@dataclass(frozen=True)
class Predictive:
    """A location-scale predictive of the latent loss: Student-t with ``dof``, Gaussian when inf."""

    loc: np.ndarray
    scale: np.ndarray
    dof: float = math.inf

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central interval, for plots."""
        q = stats.norm.ppf(0.5 + level / 2) if math.isinf(self.dof) else stats.t.ppf(0.5 + level / 2, self.dof)
        return self.loc - q * self.scale, self.loc + q * self.scale


class Surrogate:
    """A GP of standardised losses under a fixed kernel whose first term is the signal, second the noise.

    Kept apart from scikit-learn's regressor so pending points can be added under the fitted
    hyperparameters and the Gamma update can use the quadratic form y~' K^-1 y~.
    """

    def __init__(self, kernel: Kernel, inputs: np.ndarray, targets: np.ndarray):
        self.signal = kernel.k1
        self.inputs = inputs
        gram = kernel(inputs) + JITTER * np.eye(len(inputs))
        self.chol = cholesky(gram, lower=True)
        self.weights = cho_solve((self.chol, True), targets)
        self.n = len(targets)
        self.quad = float(targets @ self.weights)

    def latent(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the noise-free function at ``points``."""
        cross = self.signal(points, self.inputs)
        v = solve_triangular(self.chol, cross.T, lower=True)
        var = self.signal.diag(points) - np.einsum("ij,ij->j", v, v)
        return cross @ self.weights, np.maximum(var, 0.0)


def gaussian_predictive(surrogate: Surrogate, points: np.ndarray) -> Predictive:
    """The GP's own predictive, N(mu, s2)."""
    mean, var = surrogate.latent(points)
    return Predictive(mean, np.sqrt(var))


def student_t_predictive(surrogate: Surrogate, points: np.ndarray, a0: float, b0: float) -> Predictive:
    """The GP with a Gamma(a0, b0) precision integrated out: t_{2 a_n}(mu, (b_n / a_n) s2)."""
    mean, var = surrogate.latent(points)
    a_n = a0 + surrogate.n / 2
    b_n = b0 + surrogate.quad / 2
    return Predictive(mean, np.sqrt(var * b_n / a_n), 2 * a_n)


def expected_improvement(predictive: Predictive, best: float, xi: float) -> np.ndarray:
    """E[max(best - xi - Y, 0)] for Y ~ predictive (eq. 10, or its Student-t form); 0 where scale = 0."""
    improvement = best - xi - predictive.loc
    scale = predictive.scale
    positive = scale > 0
    z = np.divide(improvement, scale, out=np.zeros_like(improvement), where=positive)
    if math.isinf(predictive.dof):
        ei = improvement * stats.norm.cdf(z) + scale * stats.norm.pdf(z)
    else:
        nu = predictive.dof
        ei = improvement * stats.t.cdf(z, nu) + scale * (nu + z**2) / (nu - 1) * stats.t.pdf(z, nu)
    return np.where(positive, np.maximum(ei, 0.0), 0.0)


@dataclass(frozen=True)
class Model:
    """A conditioned surrogate with the map from the losses it was built on to its targets."""

    surrogate: Surrogate
    best: float  # the best observed loss, as a target
    xi: float  # in the targets' units
    mean: float
    sd: float
    warp: tuple[np.ndarray, np.ndarray] | None = None  # (targets, standardised losses), sorted, under rank warping

    def ei(self, predictive: Predictive) -> np.ndarray:
        return expected_improvement(predictive, self.best, self.xi)

    def objective(self, targets: np.ndarray, sign: float) -> np.ndarray:
        """Targets back in the objective's units (``sign`` -1 for a maximised objective); under rank warping,
        interpolated between the observed losses and held at the extremes beyond them (for plots)."""
        standardised = targets if self.warp is None else np.interp(targets, *self.warp)
        return sign * (self.mean + self.sd * standardised)


def rank_scores(losses: np.ndarray) -> np.ndarray:
    """Normal scores of the losses' ranks, ties at their mean rank: a Gaussian copula of the losses. One training
    that diverges, or a region of dead architectures, no longer squeezes every good loss into one standardised
    value, so the GP can tell the good ones apart (HEBO and Salinas et al. 2020 warp the outputs for this reason)."""
    return stats.norm.ppf((stats.rankdata(losses) - 0.5) / len(losses))


class GroupedMatern(Matern):
    """A Matern kernel with one length scale per *group* of input columns (``groups[c]``: column c's group), shared by
    the group's columns: ARD over the space's dimensions rather than over the encoding's columns. Over a choice's
    one-hot block the distance between two levels is then sqrt(2) / l whichever they are (a Hamming kernel), and
    a choice of m levels costs the marginal-likelihood fit one hyperparameter instead of m.

    The gradient with respect to a group's log length scale is the sum of the columns' (chain rule: every column's
    log length scale is that one)."""

    def __init__(self, groups: np.ndarray, length_scale: float | np.ndarray = 1.0,
                 length_scale_bounds: tuple[float, float] = (1e-5, 1e5), nu: float = 1.5):
        super().__init__(length_scale, length_scale_bounds, nu)
        self.groups = groups

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None,
                 eval_gradient: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        columns = Matern(np.atleast_1d(self.length_scale)[self.groups], self.length_scale_bounds, self.nu)
        if not eval_gradient:
            return columns(X, Y)
        gram, gradient = columns(X, Y, eval_gradient=True)
        if self.hyperparameter_length_scale.fixed:
            return gram, gradient
        membership = np.eye(np.atleast_1d(self.length_scale).size)[self.groups]  # columns x groups
        return gram, gradient @ membership


def fit_model(inputs: np.ndarray, losses: Sequence[float], pending: Sequence[np.ndarray], xi: float,
              max_fit_points: int, max_condition_points: int, rng: np.random.Generator, groups: np.ndarray,
              warping: str) -> Model:
    """Fit the kernel on (a subset of) the observations, then condition on them and on the lies at pending points.

    One Matern length scale per group of input columns (``groups``: the space's dimensions), so the kernel learns how
    much each dimension sets the loss apart. ``warping``: the targets are the standardised losses (``none``) or their
    rank scores (``rank``, see ``rank_scores``); ``xi`` is divided by the losses' standard deviation either way, as
    both kinds of target have unit spread.
    """
    y = np.asarray(losses)
    mean, sd = float(y.mean()), float(y.std()) or 1.0
    standardised = (y - mean) / sd
    targets = rank_scores(y) if warping == "rank" else standardised
    warp = (np.sort(targets), np.sort(standardised)) if warping == "rank" else None
    kernel = (ConstantKernel(1.0, (1e-2, 1e2))
              * GroupedMatern(groups, np.full(groups.max() + 1, 0.3), (1e-2, 1e1), nu=2.5)
              + WhiteKernel(1e-2, (1e-6, 1e0)))
    gp = GaussianProcessRegressor(kernel, alpha=JITTER, n_restarts_optimizer=GP_RESTARTS,
                                  random_state=int(rng.integers(2**31 - 1)))
    fit = _subset(targets, max_fit_points, rng)
    gp.fit(inputs[fit], targets[fit])
    best = float(targets.min())
    kept = _subset(targets, max_condition_points, rng)
    lies = np.concatenate([targets[kept], np.full(len(pending), best)])
    return Model(Surrogate(gp.kernel_, np.vstack([inputs[kept], *pending]), lies), best, xi / sd, mean, sd, warp)


def _subset(targets: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``cap`` observations: all of them, or the best half of ``cap`` and a random rest."""
    if len(targets) <= cap:
        return np.arange(len(targets))
    ranked = np.argsort(targets, kind="stable")
    best = ranked[: cap // 2]
    rest = rng.choice(ranked[len(best):], cap - len(best), replace=False)
    return np.sort(np.concatenate([best, rest]))
