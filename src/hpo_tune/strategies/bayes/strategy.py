"""GP-BO and Gamma-BO: random start, then EI maximised over the mixed space (see the package docstring)."""

from __future__ import annotations

import itertools
import math
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy import optimize
from scipy.stats import qmc
from threadpoolctl import threadpool_limits

from hpo_tune.errors import ConfigError
from hpo_tune.space import Params, SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.strategies.bayes.encoding import INACTIVE, Encoding
from hpo_tune.strategies.bayes.plots import surrogate_png
from hpo_tune.strategies.bayes.surrogate import (
    WARPINGS,
    Model,
    Predictive,
    Surrogate,
    fit_model,
    gaussian_predictive,
    student_t_predictive,
)
from hpo_tune.trial import Direction, Proposal, Trial, TrialState

FAILED_RULES = ("worst", "ignore")  # what a failed trial (e.g. a diverged training) tells the surrogate
MIN_OBSERVATIONS = 2  # the surrogate's hyperparameters need two points
MOST_INITIAL = 10  # random points before EI under ``n_initial: auto``, as Optuna's GPSampler and TPESampler start
GRID_POINTS = 2049  # candidates along a single numeric column
SOBOL_POINTS = 1024  # candidates in more columns
WHOLE_GRID = 2**15  # an all-discrete space of at most this many configurations is scored from its grid instead
SCORED_COST = 2**27  # the grid is scored whole while configurations x the surrogate's points^2 stay within this
REFINE_STARTS = 3  # local searches from the best candidates
NEIGHBOUR_ROUNDS = 5  # moves of the discrete neighbour search from each start
RANDOM_TRIES = 1000  # redraws past taken configurations (only a nearly exhausted discrete space needs many)
BLAS_THREADS = 1  # at the capped sizes, more threads only contend (500-point Cholesky: 3 ms on 1, 250 ms on 2 busy)
_blas = threading.Lock()
_blas_users: list[threadpool_limits] = []  # the limit in force while propose or a render (or both) runs


@contextmanager
def _few_blas_threads() -> Iterator[None]:
    """``threadpool_limits(BLAS_THREADS)`` for ``propose`` and for a render beside it: the BLAS thread count is
    the process's, so the first in sets it and the last out restores it (two overlapping ``threadpool_limits``
    would leave the process at the limit when the first one out restored what the second one saw)."""
    with _blas:
        _blas_users.append(_blas_users[0] if _blas_users else threadpool_limits(BLAS_THREADS, user_api="blas"))
    try:
        yield
    finally:
        with _blas:
            limit = _blas_users.pop()
            if not _blas_users:
                limit.restore_original_limits()


class _BayesianOptimisation(Strategy):
    """Random start, then EI maximisation under the predictive ``predictive`` defines.

    ``n_initial`` random draws first (>= 2: the surrogate needs two points; an earlier study's completed trials,
    given by a warm start, count among them; ``auto``: 2 for one dimension, as seed 001 starts its learning rate,
    else twice the dimensions up to ``MOST_INITIAL``: on the HPOBench tables two random points then EI fell behind
    Optuna's samplers, which start from 10), then ``n_iterations``
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
    ``output_warping``: the GP models the normal scores of the losses' ranks (``rank``) or the standardised losses
    (``none``); ``auto``: ``rank`` on a discrete space (every dimension a choice or an int), where EI ranks whole
    configurations and a tail of dead ones (NAS-Bench-201's) would otherwise flatten the rest, and ``none`` where a
    dimension is continuous, where converging on an optimum needs the distances near it (on Branin and Hartmann-6
    ranks made both BOs far worse) and seed 001's and 002's presets keep the paper's model. The README's
    search-quality section has the figures.
    ``choice_kernel``: how the kernel measures a categorical choice, ``hamming`` (one length scale per choice) or
    ``per_level`` (one per level); ``auto``: ``hamming`` on a discrete space (NAS-Bench-201's six choices of five
    operations: six hyperparameters instead of 30, and far lower regret at 50 trials), ``per_level`` where a
    dimension is continuous (on the mixed Hartmann-6 with noise, ``gamma_bo`` under ``hamming`` stayed on the wrong
    level of a two-level choice in most seeds).
    """

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, n_initial: int | str = "auto",
                 n_iterations: int | None = None, xi: float = 0.01, failed: str = "worst",
                 max_fit_points: int = 150, max_condition_points: int = 500, numeric_choices: str = "ordinal",
                 output_warping: str = "auto", choice_kernel: str = "auto"):
        super().__init__(space, seed, direction)
        self.encoding = Encoding(space, numeric_choices, choice_kernel)
        if output_warping == "auto":
            output_warping = "none" if self.encoding.size is None else "rank"
        if output_warping not in WARPINGS:
            raise ConfigError("strategy.output_warping", f"must be one of {WARPINGS} or 'auto', got {output_warping!r}")
        self.output_warping = output_warping
        if n_initial == "auto":
            n_initial = MIN_OBSERVATIONS if len(space) == 1 else min(MOST_INITIAL, 2 * len(space))
        if not isinstance(n_initial, int):
            raise ConfigError("strategy.n_initial", f"must be an int >= {MIN_OBSERVATIONS} or 'auto', "
                                                    f"got {n_initial!r}")
        if failed not in FAILED_RULES:
            raise ConfigError("strategy.failed", f"must be one of {FAILED_RULES}, got {failed!r}")
        self.failed = failed
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
        with _few_blas_threads():
            return self._propose(history, numbers)

    def _propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        most = self.max_trials()
        inside = [k for k in numbers if most is None or k < most]
        inputs, losses = self._observations(history)
        pending = [self._encode(t.params) for t in history if t.state is TrialState.RUNNING]
        taken = {self._key(t.params) for t in history}
        warm = sum(t.number < 0 and t.state is TrialState.COMPLETE for t in history)  # an earlier study's results
        initial = self.n_initial - warm  # stand in for random draws (``hpo_tune.strategies.prior``)
        proposals = []
        for k in inside:
            if self.encoding.size is not None and len(taken) >= self.encoding.size:
                return Decision(proposals, finished=True)  # every configuration of a discrete space has run
            if k >= initial and len(losses) >= MIN_OBSERVATIONS:
                params = self._next_params(inputs, losses, pending, taken, self.rng(k))
            elif k >= initial and pending:
                break  # the model needs results that are still running
            else:
                params = self._draw(taken, self.rng(k))
            proposals.append(Proposal(params))
            pending.append(self._encode(params))
            taken.add(self._key(params))
        return Decision(proposals, finished=len(proposals) == len(inside) < len(numbers))

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """The surrogate and its 95% band as they stand after ``history`` (see ``plots.surrogate_png``)."""
        inputs, losses = self._observations(history)
        if len(losses) < MIN_OBSERVATIONS:
            return {}
        taken = {t.number for t in history}
        number = next(k for k in itertools.count() if k not in taken)
        with _few_blas_threads():
            model = self._model(inputs, losses, [], self.rng(number))
            image = surrogate_png(self.name, self.encoding, model, lambda u: self.predictive(model.surrogate, u),
                                  np.asarray(inputs), np.asarray(losses), self._sign)
        return {f"{self.name}/surrogate.png": image}

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
               rng: np.random.Generator) -> Model:
        return fit_model(np.asarray(inputs), losses, pending, self.xi, self.max_fit_points,
                         self.max_condition_points, rng, self.encoding.groups, self.output_warping)

    def _next_params(self, inputs: list[np.ndarray], losses: list[float], pending: list[np.ndarray],
                     taken: set[tuple[Any, ...]], rng: np.random.Generator) -> Params:
        """The untaken configuration of highest EI found; a random untaken one if every point found is taken."""
        model = self._model(inputs, losses, pending, rng)
        for point in self._ranked(lambda u: model.ei(self.predictive(model.surrogate, u)), rng, model.surrogate.n):
            params = self.encoding.decode(point)
            if self._key(params) not in taken:
                return params
        return self._draw(taken, rng)

    def _ranked(self, acquisition: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator,
                conditioned: int) -> np.ndarray:
        """Candidates and the local optima found from the best few, best EI first (ties: candidates); a discrete
        space scored whole, best EI first. ``conditioned``: the surrogate's points (see ``_candidates``)."""
        candidates, whole = self._candidates(rng, conditioned)
        values = acquisition(candidates)
        if whole:
            return candidates[np.argsort(-values, kind="stable")]
        starts = np.argsort(-values, kind="stable")[:REFINE_STARTS]
        refined = [self._refine(candidates[i], values[i], acquisition) for i in starts]
        points = np.vstack([candidates, *(point for point, _ in refined)])
        scores = np.concatenate([values, [value for _, value in refined]])
        return points[np.argsort(-scores, kind="stable")]

    def _candidates(self, rng: np.random.Generator, conditioned: int) -> tuple[np.ndarray, bool]:
        """The candidates, and whether they are the whole space.

        A discrete space of at most ``WHOLE_GRID`` configurations: every one of them while that costs at most
        ``SCORED_COST`` (configurations x ``conditioned``^2: EI's variance is quadratic in the surrogate's points),
        so NAS-Bench-201's 15,625 up to 92 points; past that, a seeded sample of that many (at least
        ``SOBOL_POINTS``), to be climbed from. Else a 1-D grid or a scrambled Sobol set, projected."""
        encoding = self.encoding
        if encoding.size is not None and encoding.size <= WHOLE_GRID:
            grid = encoding.grid()
            most = max(SOBOL_POINTS, SCORED_COST // conditioned**2)
            if len(grid) <= most:
                return grid, True
            return grid[np.sort(rng.choice(len(grid), most, replace=False))], False
        if encoding.width == 1:
            relaxed = np.linspace(0.0, 1.0, GRID_POINTS)[:, None]
        else:
            relaxed = qmc.Sobol(encoding.width, scramble=True, rng=rng).random(SOBOL_POINTS)
        return np.unique(encoding.project(relaxed), axis=0), False

    def _refine(self, start: np.ndarray, value: float,
                acquisition: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
        """Climb from a projected candidate: L-BFGS-B over the active continuous columns (the discrete ones held), then
        greedy moves to the best discrete neighbour while EI improves; every point visited is projected."""
        point = start.copy()
        columns = self.encoding.continuous[start[self.encoding.continuous] != INACTIVE]
        if columns.size:
            def negative(u: np.ndarray) -> float:
                moved = point.copy()
                moved[columns] = u
                return -acquisition(moved[None, :])[0]

            result = optimize.minimize(negative, point[columns], method="L-BFGS-B", bounds=[(0.0, 1.0)] * columns.size)
            if -result.fun > value:
                point[columns], value = np.clip(result.x, 0.0, 1.0), -result.fun
        for _ in range(NEIGHBOUR_ROUNDS):
            neighbours = self.encoding.neighbours(point)
            if not len(neighbours):
                break
            scores = acquisition(neighbours)
            best = int(np.argmax(scores))
            if scores[best] <= value:
                break
            point, value = neighbours[best], scores[best]
        return point, value

    def _draw(self, taken: set[tuple[Any, ...]], rng: np.random.Generator) -> Params:
        """The space's own random draw, redrawn while it is a configuration already taken."""
        for _ in range(RANDOM_TRIES):
            params = self.space.sample(rng)
            if self._key(params) not in taken:
                break
        return params

    def _encode(self, params: Params) -> np.ndarray:
        return self.encoding.encode(params)

    def _key(self, params: Params) -> tuple[Any, ...]:
        """A configuration's identity, for telling which have been taken (an inactive dimension: None)."""
        return tuple(params.get(name) for name in self.space)

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

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, n_initial: int | str = "auto",
                 n_iterations: int | None = None, xi: float = 0.01, failed: str = "worst",
                 max_fit_points: int = 150, max_condition_points: int = 500, numeric_choices: str = "ordinal",
                 output_warping: str = "auto", choice_kernel: str = "auto", a0: float = 1.0, b0: float = 1.0):
        super().__init__(space, seed, direction, n_initial, n_iterations, xi, failed, max_fit_points,
                         max_condition_points, numeric_choices, output_warping, choice_kernel)
        for key, value in (("a0", a0), ("b0", b0)):
            if not value > 0:
                raise ConfigError(f"strategy.{key}", f"must be > 0, got {value}")
        self.a0 = a0
        self.b0 = b0

    def predictive(self, surrogate: Surrogate, points: np.ndarray) -> Predictive:
        return student_t_predictive(surrogate, points, self.a0, self.b0)
