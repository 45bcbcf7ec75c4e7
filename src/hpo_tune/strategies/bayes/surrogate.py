"""The BOs' surrogate: a GP of standardised (or rank-warped) losses, its Gaussian and Student-t predictives, and EI
(see the package docstring for the formulas)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.spatial.distance import cdist, pdist, squareform
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel

GP_RESTARTS = 1  # extra random starts of the marginal-likelihood fit
FIT_TOLERANCE = 1e-5  # a start of that fit stops once a step gains less than this share of the likelihood
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
        chol = cholesky(gram, lower=True)
        self.weights = cho_solve((chol, True), targets)
        self.upper = chol.T  # L', Fortran-ordered: LAPACK solves L v = k* against it without copying (1.5x faster)
        self.n = len(targets)
        self.quad = float(targets @ self.weights)

    def latent(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the noise-free function at ``points``."""
        cross = self.signal(points, self.inputs)
        # L^-1 k* by a triangular solve: an explicit L^-1 is faster still, but inexact where K is near-singular
        v = solve_triangular(self.upper, cross.T, trans="T", check_finite=False)
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
    """A Matern-5/2 kernel with one length scale per *group* of input columns (``groups[c]``: column c's group), shared
    by the group's columns: ARD over the space's dimensions rather than over the encoding's columns. Over a choice's
    one-hot block the distance between two levels is then sqrt(2) / l whichever they are (a Hamming kernel), and
    a choice of m levels costs the marginal-likelihood fit one hyperparameter instead of m. The fit is
    ``NegativeLikelihood``'s, which has the gradient."""

    def __init__(self, groups: np.ndarray, length_scale: float | np.ndarray = 1.0,
                 length_scale_bounds: tuple[float, float] = (1e-5, 1e5)):
        super().__init__(length_scale, length_scale_bounds, nu=2.5)
        self.groups = groups

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False) -> np.ndarray:
        """scikit-learn's Matern-5/2 formula, in place: EI scores up to 30,000 configurations per proposal."""
        if eval_gradient:
            raise NotImplementedError("GroupedMatern is fitted by NegativeLikelihood, which has the gradient")
        scales = np.atleast_1d(self.length_scale)[self.groups]
        gram = (squareform(pdist(X / scales, "sqeuclidean")) if Y is None
                else cdist(X / scales, Y / scales, "sqeuclidean"))
        gram *= 5
        root = np.sqrt(gram)
        gram /= 3
        gram += root
        gram += 1
        gram *= np.exp(-root, out=root)
        return gram


def _group_distances(inputs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of ``inputs`` within each group of columns: n x n x groups."""
    return np.stack([squareform(pdist(inputs[:, groups == g], "sqeuclidean")) for g in range(groups.max() + 1)],
                    axis=-1)


def _matern_and_gradient(scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matern-5/2 from the groups' squared distances over their squared length scales (n x n x groups), and its
    gradient in the log length scales."""
    root = np.sqrt(5 * scaled.sum(-1))
    decay = np.exp(-root)
    return (1 + root + root**2 / 3) * decay, 5 / 3 * scaled * ((1 + root) * decay)[..., None]


class NegativeLikelihood:
    """-log p(y | theta) and its gradient for the kernel c * GroupedMatern(l) + w * delta (+ ``JITTER``), theta =
    (log c, log l_1..l_G, log w): scikit-learn's order and formula (``GaussianProcessRegressor``'s
    ``log_marginal_likelihood``).

    Written out because the groups' distances can then be computed once per fit: scikit-learn's recomputes them and
    clones the kernel at every step of L-BFGS-B, which was two thirds of a proposal at 100 trials."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, groups: np.ndarray):
        self.distances = _group_distances(inputs, groups)
        self.targets = targets
        self.eye = np.eye(len(targets))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        amplitude, noise, scales = np.exp(theta[0]), np.exp(theta[-1]), np.exp(theta[1:-1])
        matern, gradient = _matern_and_gradient(self.distances / scales**2)
        try:
            chol = cholesky(amplitude * matern + (noise + JITTER) * self.eye, lower=True)
        except LinAlgError:
            return math.inf, np.zeros_like(theta)
        alpha = cho_solve((chol, True), self.targets)
        value = (self.targets @ alpha / 2 + np.log(np.diag(chol)).sum()
                 + len(self.targets) / 2 * math.log(2 * math.pi))
        inner = np.outer(alpha, alpha) - cho_solve((chol, True), self.eye)  # d log p / dK
        ascent = np.concatenate([[np.sum(inner * matern) * amplitude],
                                 np.einsum("ij,ijg->g", inner, gradient) * amplitude,
                                 [np.trace(inner) * noise]]) / 2
        return float(value), -ascent


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
              * GroupedMatern(groups, np.full(groups.max() + 1, 0.3), (1e-2, 1e1))
              + WhiteKernel(1e-2, (1e-6, 1e0)))
    fit = _subset(targets, max_fit_points, rng)
    kernel = kernel.clone_with_theta(_maximise_likelihood(NegativeLikelihood(inputs[fit], targets[fit], groups),
                                                          kernel.theta, kernel.bounds, rng))
    best = float(targets.min())
    kept = _subset(targets, max_condition_points, rng)
    lies = np.concatenate([targets[kept], np.full(len(pending), best)])
    return Model(Surrogate(kernel, np.vstack([inputs[kept], *pending]), lies), best, xi / sd, mean, sd, warp)


def _maximise_likelihood(objective: NegativeLikelihood, theta: np.ndarray, bounds: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """The log hyperparameters of highest likelihood that L-BFGS-B finds from ``theta`` and from ``GP_RESTARTS``
    uniform draws within ``bounds``, as scikit-learn's ``n_restarts_optimizer`` does. Each start stops at a relative
    gain of ``FIT_TOLERANCE`` (scipy's default, 2.2e-9, took 2-3x the steps for digits that EI does not tell apart:
    half of a proposal at 100 trials)."""
    starts = [theta, *rng.uniform(bounds[:, 0], bounds[:, 1], (GP_RESTARTS, len(theta)))]
    results = [optimize.minimize(objective, start, method="L-BFGS-B", jac=True, bounds=bounds,
                                 options={"ftol": FIT_TOLERANCE}) for start in starts]
    return min(results, key=lambda result: result.fun).x


def _subset(targets: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``cap`` observations: all of them, or the best half of ``cap`` and a random rest."""
    if len(targets) <= cap:
        return np.arange(len(targets))
    ranked = np.argsort(targets, kind="stable")
    best = ranked[: cap // 2]
    rest = rng.choice(ranked[len(best):], cap - len(best), replace=False)
    return np.sort(np.concatenate([best, rest]))
