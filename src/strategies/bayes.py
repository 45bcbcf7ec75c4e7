"""Bayesian optimisation: Gaussian-process BO with expected improvement, and the seed-001 "Gamma" BO.

Seed 001 (Y. H. Kim, "Research on Hyperparameter Optimization for Improving AutoML Performance",
thesis; a journal version is Kim & Chung, Electronics 8(11) 1267, 2019) tunes a CNN's learning rate
by BO and compares the usual Gaussian predictive with one built from a conjugate Gamma prior on
the precision. Most of its formulas were lost in extraction; what follows is reconstructed from its
prose and the textbook results it cites (Bishop 2.3.6 [25, 41], Lizotte 2008 [36], Martin Krasser's
blog, whose scikit-learn GP code it follows).

Both strategies: trial numbers below ``n_initial`` are random draws (the paper starts from two
points); later ones maximise expected improvement (EI) over the space. Losses are
``direction.loss(value)`` of the COMPLETE trials (always minimised). A FAILED or PRUNED trial counts
as the worst loss seen so far (``failed: worst``, once two trials are complete) or is left out
(``failed: ignore``). Either way their numbers stay taken.

**Surrogate (both).** Each dimension maps to u in [0, 1] (log dimensions in log space, ints
relaxed and rounded back). Losses are standardised, y~ = (y - mean) / sd (what scikit-learn's
``normalize_y`` does; done here so the predictive can be computed from the fitted kernel). The
kernel k = c * Matern_5/2(u, u'; l_1..l_d) + w * delta(u, u') has its amplitude c, length scales l
and noise w fitted by maximum marginal likelihood (``GaussianProcessRegressor``, L-BFGS-B with
restarts). With K = k(U, U) over the n observations (noise included) and k* = c * Matern(u, U)
(noise excluded: EI is about the function, not about one noisy retraining) the latent predictive is

    f(u) | D ~ N(mu(u), s2(u)),   mu = k*' K^-1 y~,   s2 = c - k*' K^-1 k*.

**gp_bo: EI, paper eq. 10** (Mockus/Jones eq. 9 with Lizotte's trade-off xi >= 0; written for
minimisation, y+ = the best observed loss):

    I = y+ - mu(u) - xi,   Z = I / s,   EI(u) = I Phi(Z) + s phi(Z)  if s > 0,   0  if s = 0.

xi is in the objective's units (divided by sd internally). Default 0.01: the paper cites research
[35] finding one value of xi best (the number was lost in extraction); 0.01 is Lizotte's
recommendation and what Krasser's blog uses. y+ is the best observed loss, as eq. 10 is written
(Krasser's code uses the best posterior mean at the sampled points instead).

**gamma_bo: the Gamma prior on the precision, paper eqs. 13-15.** Sec. 3.3 says the work changes
the distribution the acquisition is evaluated under, not the surrogate. Eq. 13 is the conjugate
Gaussian prior on a mean with known variance; the paper drops it ("dependence on the SM") for eq.
14: the mean is known and the precision lambda = 1/sigma^2 is unknown, with likelihood
prod_n N(x_n | mu, 1/lambda) ~ lambda^(N/2) exp(-lambda/2 sum_n (x_n - mu)^2), a conjugate
Gamma(a0, b0) prior and (eq. 15) the posterior Gamma(a0 + N/2, b0 + 1/2 sum_n (x_n - mu)^2). It then
"estimates the variance with it, and the mean again with the estimated variance". Integrating the
precision out of a Gaussian gives a Student-t with 2 a_N degrees of freedom (Bishop 2.159).

Reconstruction: the known mean is the surrogate's, and the Gamma precision tau scales the GP,
y~ | tau ~ N(0, K / tau) and f | tau, D ~ N(mu, s2 / tau), tau ~ Gamma(a0, b0) (shape, rate). The
whitened observations L^-1 y~ (K = L L') are n independent N(0, 1/tau) under this model: they are
the (x_n - mu) of eq. 14 in the GP's own metric. So

    a_n = a0 + n / 2,   b_n = b0 + 1/2 y~' K^-1 y~,
    f(u) | D ~ t_{2 a_n}(mu(u), scale^2 = (b_n / a_n) s2(u)).

This is the Normal-Gamma model with a GP covariance (a Student-t process with an inverse-Gamma
amplitude): with a constant kernel 1/kappa0 and unit noise it is exactly the textbook update
NG(mu0 = 0, kappa0, a0, b0) -> kappa_n = kappa0 + n, mu_n = n ybar / kappa_n,
b_n = b0 + 1/2 sum (y - ybar)^2 + kappa0 n ybar^2 / (2 kappa_n), mean ~ t_{2 a_n}(mu_n, b_n / (a_n kappa_n))
(tested). The kernel amplitude relative to the noise plays kappa0's part, so there is no kappa0
option. Building the precision from the raw residuals y - mu(x_n) instead would measure only the
noise (the GP nearly interpolates) and lose the GP's spatial uncertainty; whitening keeps its shape
and puts the Gamma on its overall scale.

EI under the Student-t (closed form, nu = 2 a_n > 1, with I and Z as above and s the t scale):

    EI(u) = I T_nu(Z) + s (nu + Z^2) / (nu - 1) t_nu(Z),

from E[max(I - s T, 0)] = s int_{-inf}^{Z} (Z - t) t_nu(t) dt and
int_{-inf}^{Z} t t_nu(t) dt = -(nu + Z^2) / (nu - 1) t_nu(Z). Heavier tails than the Gaussian with
the same scale give more EI where s is large: more exploration, the paper's point.

``a0`` and ``b0``: tau has prior mean a0 / b0 and weighs like 2 a0 pseudo-observations; b0 / a0 is the
prior guess of the variance multiplier on the GP. As the prior grows confident (a0 = b0 -> inf)
b_n / a_n -> 1 and nu -> inf, so the predictive tends to gp_bo's N(mu, s2) and the proposals to gp_bo's
(tested). Defaults a0 = b0 = 1: centred on the GP's own scale and weak (nu = 2 + n), so the tails are
heavy early and fade as observations accumulate. With c and w fitted by maximum likelihood
y~' K^-1 y~ = n unless a bound on them binds (rescaling both is free), so with a0 = b0 the Gamma
mostly adds tails; b0 != a0 also rescales.

**Batches: constant liar.** Pending points (RUNNING trials and the numbers proposed earlier in the
same request) join the data with the best observed loss as their value (kernel hyperparameters as
fitted on the real observations, y+ still the real best). A lie collapses the uncertainty at its
point, so the next proposal goes elsewhere. A BO number waits (is not proposed) while fewer than two
trials are complete and some are pending; with nothing pending it falls back to a random draw.

Determinism: every random choice of trial k (GP restarts, the Sobol candidates) comes from
``self.rng(k)``. EI is maximised over a dense grid (1-D) or a scrambled Sobol set, then L-BFGS-B
from the best few candidates.
"""

from __future__ import annotations

import itertools
import math
import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.stats import qmc
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits

from src.errors import ConfigError
from src.plots import png, pyplot
from src.space import Choice, Float, Int, LogFloat, Params, SearchSpace
from src.strategies.base import Decision, Strategy
from src.trial import Direction, Proposal, Trial, TrialState

# A hyperparameter at its bound is routine for a small, noiseless toy study. Filtered for scikit-learn's GP
# module once, not around each fit: catch_warnings is process-wide state, and the tables and plots are
# drawn in a background thread while proposals are made in the main one.
warnings.filterwarnings("ignore", category=ConvergenceWarning, module=r"sklearn\.gaussian_process")

FAILED_RULES = ("worst", "ignore")  # what a failed trial (e.g. a diverged training) tells the surrogate
MIN_OBSERVATIONS = 2  # the surrogate's hyperparameters need two points
GRID_POINTS = 2049  # candidates in 1-D
SLICE_POINTS = 400  # points along a dimension in the surrogate plots
SOBOL_POINTS = 1024  # candidates in more dimensions
REFINE_STARTS = 3  # L-BFGS-B runs from the best candidates
GP_RESTARTS = 1  # extra random starts of the marginal-likelihood fit
BLAS_THREADS = 1  # at the capped sizes, more threads only contend (500-point Cholesky: 3 ms on 1, 250 ms on 2 busy)
JITTER = 1e-10  # scikit-learn's default alpha, kept so the surrogate matches its fit


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
class _Model:
    """A conditioned surrogate with the standardisation of the losses it was built on."""

    surrogate: Surrogate
    best: float  # the best observed loss, standardised
    xi: float  # standardised
    mean: float
    sd: float

    def ei(self, predictive: Predictive) -> np.ndarray:
        return expected_improvement(predictive, self.best, self.xi)


class _BayesianOptimisation(Strategy):
    """Random start, then EI maximisation under the predictive ``predictive`` defines.

    ``n_initial`` random draws first (>= 2: the surrogate needs two points), then ``n_iterations``
    EI proposals (None, the default: as many as the study's ``n_trials`` leaves); ``xi`` is EI's
    exploration trade-off (eq. 10) in the objective's units.
    ``failed``: ``worst`` counts a failed trial (a diverged training, say) as an observation of
    the worst loss seen so far, so the search learns to avoid its region; ``ignore`` leaves it out.
    ``max_fit_points`` bounds the cost of fitting the kernel's hyperparameters (each step of that
    fit is a Cholesky factorisation, cubic in the points, and its gradient): with more observations,
    the fit uses the best half of that many and a seeded random sample of the rest.
    ``max_condition_points`` bounds the surrogate the same way (one factorisation, then every EI
    evaluation is quadratic in its points); pending points always join it. Studies of up to 150
    trials, BO's usual range, are unaffected; at 1,000 and 5,000 trials of history a proposal takes
    well under a second (``python -m bench proposals``).
    """

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, n_initial: int = 2,
                 n_iterations: int | None = None, xi: float = 0.01, failed: str = "worst",
                 max_fit_points: int = 150, max_condition_points: int = 500):
        super().__init__(space, seed, direction)
        if failed not in FAILED_RULES:
            raise ConfigError("strategy.failed", f"must be one of {FAILED_RULES}, got {failed!r}")
        self.failed = failed
        for name, dim in space.items():
            if isinstance(dim, Choice):
                raise ConfigError("space", f"{self.name} needs numeric dimensions; {name!r} is a choice")
        if n_initial < MIN_OBSERVATIONS:
            raise ConfigError("strategy.n_initial", f"must be >= {MIN_OBSERVATIONS}, got {n_initial}")
        if n_iterations is not None and n_iterations < 0:
            raise ConfigError("strategy.n_iterations", f"must be >= 0, got {n_iterations}")
        if not xi >= 0:
            raise ConfigError("strategy.xi", f"must be >= 0, got {xi}")
        for key, cap in (("max_fit_points", max_fit_points), ("max_condition_points", max_condition_points)):
            if cap < MIN_OBSERVATIONS:
                raise ConfigError(f"strategy.{key}", f"must be >= {MIN_OBSERVATIONS}, got {cap}")
        self.max_fit_points, self.max_condition_points = max_fit_points, max_condition_points
        self.n_initial = n_initial
        self.n_iterations = n_iterations
        self.xi = xi

    @abstractmethod
    def predictive(self, surrogate: Surrogate, points: np.ndarray) -> Predictive:
        """The distribution EI is evaluated under."""

    def max_trials(self) -> int | None:
        return None if self.n_iterations is None else self.n_initial + self.n_iterations

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            return self._propose(history, numbers)

    def _propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        most = self.max_trials()
        inside = [k for k in numbers if most is None or k < most]
        inputs, losses = self._observations(history)
        pending = [self._encode(t.params) for t in history if t.state is TrialState.RUNNING]
        proposals = []
        for k in inside:
            if k >= self.n_initial and len(losses) >= MIN_OBSERVATIONS:
                params = self._decode(self._next_point(inputs, losses, pending, self.rng(k)))
            elif k >= self.n_initial and pending:
                break  # the model needs results that are still running
            else:
                params = self.space.sample(self.rng(k))
            proposals.append(Proposal(params))
            pending.append(self._encode(params))
        return Decision(proposals, finished=len(proposals) == len(inside) < len(numbers))

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """The surrogate and its 95% band as they stand after ``history``: with EI for a 1-D space, else as
        slices through the best trial (one panel per dimension, the others held at the best trial's values)."""
        inputs, losses = self._observations(history)
        if len(losses) < MIN_OBSERVATIONS:
            return {}
        taken = {t.number for t in history}
        number = next(k for k in itertools.count() if k not in taken)
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            model = self._model(inputs, losses, [], self.rng(number))
            plot = self._plot if len(self.space) == 1 else self._slices
            return {f"{self.name}/surrogate.png": plot(model, inputs, losses)}

    def _observations(self, history: Sequence[Trial]) -> tuple[list[np.ndarray], list[float]]:
        complete = [t for t in history if t.state is TrialState.COMPLETE and t.value is not None
                    and math.isfinite(t.value)]
        inputs = [self._encode(t.params) for t in complete]
        losses = [self.direction.loss(t.value) for t in complete]
        if self.failed == "worst" and len(losses) >= MIN_OBSERVATIONS:  # a diverged training says "not here" too
            failed = [t for t in history if t.state in (TrialState.FAILED, TrialState.PRUNED)]
            inputs += [self._encode(t.params) for t in failed]
            losses += [max(losses)] * len(failed)
        return inputs, losses

    def _model(self, inputs: list[np.ndarray], losses: list[float], pending: list[np.ndarray],
               rng: np.random.Generator) -> _Model:
        """Fit the kernel on the observations, then condition on them and on the lies at pending points."""
        y = np.asarray(losses)
        mean, sd = float(y.mean()), float(y.std()) or 1.0
        targets = (y - mean) / sd
        kernel = (ConstantKernel(1.0, (1e-2, 1e2))
                  * Matern(np.full(len(self.space), 0.3), (1e-2, 1e1), nu=2.5)
                  + WhiteKernel(1e-2, (1e-6, 1e0)))
        gp = GaussianProcessRegressor(kernel, alpha=JITTER, n_restarts_optimizer=GP_RESTARTS,
                                      random_state=int(rng.integers(2**31 - 1)))
        observed = np.asarray(inputs)
        fit = _subset(targets, self.max_fit_points, rng)
        gp.fit(observed[fit], targets[fit])
        best = float(targets.min())
        kept = _subset(targets, self.max_condition_points, rng)
        lies = np.concatenate([targets[kept], np.full(len(pending), best)])
        return _Model(Surrogate(gp.kernel_, np.vstack([observed[kept], *pending]), lies), best, self.xi / sd, mean,
                      sd)

    def _next_point(self, inputs: list[np.ndarray], losses: list[float], pending: list[np.ndarray],
                    rng: np.random.Generator) -> np.ndarray:
        model = self._model(inputs, losses, pending, rng)
        return self._maximise(lambda u: model.ei(self.predictive(model.surrogate, u)), rng)

    def _maximise(self, acquisition: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator) -> np.ndarray:
        d = len(self.space)
        if d == 1:
            candidates = np.linspace(0.0, 1.0, GRID_POINTS)[:, None]
        else:
            candidates = qmc.Sobol(d, scramble=True, rng=rng).random(SOBOL_POINTS)
        values = acquisition(candidates)
        order = np.argsort(-values, kind="stable")
        best_u, best_value = candidates[order[0]], values[order[0]]
        for start in candidates[order[:REFINE_STARTS]]:
            result = optimize.minimize(lambda u: -acquisition(u[None, :])[0], start, method="L-BFGS-B",
                                       bounds=[(0.0, 1.0)] * d)
            if -result.fun > best_value:
                best_u, best_value = np.clip(result.x, 0.0, 1.0), -result.fun
        return best_u

    def _encode(self, params: Params) -> np.ndarray:
        return np.array([_to_unit(dim, params[name]) for name, dim in self.space.items()])

    def _decode(self, unit: np.ndarray) -> Params:
        return {name: _from_unit(dim, float(u)) for (name, dim), u in zip(self.space.items(), unit)}

    def _plot(self, model: _Model, inputs: list[np.ndarray], losses: list[float]) -> bytes:
        """One dimension: the surrogate over it, the trials, and EI below."""
        plt = pyplot()
        ((name, dim),) = self.space.items()
        grid = np.linspace(0.0, 1.0, SLICE_POINTS)[:, None]
        predictive = self.predictive(model.surrogate, grid)
        fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5), height_ratios=[2, 1])
        self._band(top, dim, grid[:, 0], predictive, model)
        top.scatter(_values(dim, np.asarray(inputs)[:, 0]), self._sign * np.asarray(losses), color="black", zorder=3,
                    label="trials")
        top.set_ylabel("objective")
        top.legend(fontsize=8)
        bottom.plot(_values(dim, grid[:, 0]), model.sd * model.ei(predictive), color="tab:red")
        bottom.set_ylabel("expected improvement")
        _dimension_axis(bottom, name, dim)
        top.set_title(f"{self.name}: {len(losses)} complete trials")
        return png(fig)

    def _slices(self, model: _Model, inputs: list[np.ndarray], losses: list[float]) -> bytes:
        """Several dimensions: a panel per dimension along which the surrogate is cut through the best trial."""
        plt = pyplot()
        best = int(np.argmin(losses))
        columns = min(3, len(self.space))
        rows = math.ceil(len(self.space) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.6 * rows), squeeze=False)
        objective = self._sign * np.asarray(losses)
        for j, (ax, (name, dim)) in enumerate(zip(axes.flat, self.space.items())):
            grid = np.tile(inputs[best], (SLICE_POINTS, 1))
            grid[:, j] = np.linspace(0.0, 1.0, SLICE_POINTS)
            self._band(ax, dim, grid[:, j], self.predictive(model.surrogate, grid), model)
            ax.scatter(_values(dim, np.asarray(inputs)[:, j]), objective, s=14, color="gray", alpha=0.6, zorder=3,
                       label="trials (other dimensions vary)")
            value = _from_unit(dim, float(inputs[best][j]))
            ax.scatter([value], [objective[best]], marker="*", s=140, color="tab:red", zorder=4, label="best trial")
            ax.axvline(value, color="tab:red", linestyle=":", linewidth=0.8)
            ax.set_title(f"{name} (best trial: {value:.4g})", fontsize=9)
            _dimension_axis(ax, name, dim)
            if j % columns == 0:
                ax.set_ylabel("objective")
        for ax in list(axes.flat)[len(self.space):]:
            ax.set_visible(False)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{self.name}: surrogate through the best trial, one dimension at a time, the others held "
                     f"at its values ({len(losses)} complete trials)", fontsize=10)
        return png(fig)

    def _band(self, ax: Any, dim: Float | Int, units: np.ndarray, predictive: Predictive, model: _Model) -> None:
        """The surrogate's mean and 95% band of the function along ``dim`` (``units`` in [0, 1])."""
        low, high = predictive.interval(0.95)
        x = _values(dim, units)
        ax.fill_between(x, self._sign * (model.mean + model.sd * low), self._sign * (model.mean + model.sd * high),
                        alpha=0.25, label="95% band of the function")
        ax.plot(x, self._sign * (model.mean + model.sd * predictive.loc), label="surrogate mean")

    @property
    def _sign(self) -> float:
        """From losses back to the objective's units (a maximised objective's loss is its negative)."""
        return 1.0 if self.direction is Direction.MINIMIZE else -1.0


class GaussianProcessBO(_BayesianOptimisation):
    """GP-BO with EI (paper eq. 10): the Gaussian baseline of seed 001."""

    name = "gp_bo"

    def predictive(self, surrogate: Surrogate, points: np.ndarray) -> Predictive:
        return gaussian_predictive(surrogate, points)


class GammaBO(_BayesianOptimisation):
    """Seed 001's Gamma BO: EI under the Student-t that a Gamma(a0, b0) precision prior gives.

    ``a0`` (shape) and ``b0`` (rate) of the prior on the precision multiplier tau of the GP; both must
    be positive. a0 = b0 -> inf recovers gp_bo.
    """

    name = "gamma_bo"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, n_initial: int = 2,
                 n_iterations: int | None = None, xi: float = 0.01, failed: str = "worst",
                 max_fit_points: int = 150, max_condition_points: int = 500, a0: float = 1.0, b0: float = 1.0):
        super().__init__(space, seed, direction, n_initial, n_iterations, xi, failed, max_fit_points,
                         max_condition_points)
        for key, value in (("a0", a0), ("b0", b0)):
            if not value > 0:
                raise ConfigError(f"strategy.{key}", f"must be > 0, got {value}")
        self.a0 = a0
        self.b0 = b0

    def predictive(self, surrogate: Surrogate, points: np.ndarray) -> Predictive:
        return student_t_predictive(surrogate, points, self.a0, self.b0)


def _subset(targets: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``cap`` observations: all of them, or the best half of ``cap`` and a random rest."""
    if len(targets) <= cap:
        return np.arange(len(targets))
    ranked = np.argsort(targets, kind="stable")
    best = ranked[: cap // 2]
    rest = rng.choice(ranked[len(best):], cap - len(best), replace=False)
    return np.sort(np.concatenate([best, rest]))


def _values(dim: Float | Int, units: np.ndarray) -> np.ndarray:
    """The dimension's values at ``units`` in [0, 1], unrounded (for plots)."""
    return np.array([_from_unit(dim, float(u), snap=False) for u in units])


def _dimension_axis(ax: Any, name: str, dim: Float | Int) -> None:
    """Label the x axis with the parameter's name; log dimensions on a log scale with plain numbers, ticked at
    the powers of ten, and at 2 and 5 x 10^k too when the range spans less than two decades (one decade
    alone would leave the axis with one label or with crowded minor ones)."""
    from matplotlib import ticker

    ax.set_xlabel(name)
    if isinstance(dim, LogFloat) or (isinstance(dim, Int) and dim.log):
        ax.set_xscale("log")
        narrow = math.log10(dim.high / dim.low) < 2
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _to_unit(dim: Float | Int, value: float) -> float:
    low, high = dim.low, dim.high
    if isinstance(dim, LogFloat) or (isinstance(dim, Int) and dim.log):
        low, high, value = math.log(low), math.log(high), math.log(value)
    return (value - low) / (high - low) if high > low else 0.0


def _from_unit(dim: Float | Int, u: float, snap: bool = True) -> float | int:
    """The value at ``u`` in [0, 1]; ints rounded to their step unless ``snap`` is off (plots)."""
    u = min(max(u, 0.0), 1.0)
    if isinstance(dim, LogFloat) or (isinstance(dim, Int) and dim.log):
        value = math.exp(math.log(dim.low) + u * (math.log(dim.high) - math.log(dim.low)))
    else:
        value = dim.low + u * (dim.high - dim.low)
    if isinstance(dim, Int):
        if not snap:
            return value
        top = dim.low + (dim.high - dim.low) // dim.step * dim.step
        return int(min(top, dim.low + round((value - dim.low) / dim.step) * dim.step))
    return float(min(max(value, dim.low), dim.high))
