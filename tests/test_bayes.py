"""GP-BO and Gamma-BO (seed 001) on synthetic objectives, driven in memory without MLflow."""

import math
import struct

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from src.errors import ConfigError
from src.space import SearchSpace
from src.strategies.bayes import (
    GammaBO,
    GaussianProcessBO,
    Predictive,
    Surrogate,
    _subset,
    expected_improvement,
    gaussian_predictive,
    student_t_predictive,
)
from src.trial import Direction, Trial, TrialState
from tests.in_memory import drive

LR = SearchSpace.from_config({"lr": {"type": "log_float", "low": 1e-4, "high": 1.0}})
BEST_LR = 0.02
STRATEGIES = [GaussianProcessBO, GammaBO]


def accuracy(lr: float) -> float:
    """A smooth bump in log10(lr) with its single maximum at BEST_LR, inside the range."""
    return 0.95 * math.exp(-((math.log10(lr / BEST_LR)) ** 2) / (2 * 0.5**2))


def done(number, params, value):
    return Trial(number, params, TrialState.COMPLETE, value, f"r{number}")


def lr_history(n, seed=0):
    rng = np.random.default_rng(seed)
    lrs = 10 ** rng.uniform(-4, 0, n)
    return [done(k, {"lr": float(lr)}, accuracy(lr)) for k, lr in enumerate(lrs)]


@pytest.mark.parametrize("cls", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_the_best_learning_rate_within_12_evaluations(cls, seed):
    strategy = cls(LR, seed, Direction.MAXIMIZE, n_iterations=10)  # 2 random points + 10 BO iterations
    history = drive(strategy, lambda p, _: accuracy(p["lr"]))
    assert len(history) == 12
    best = max(history, key=lambda t: t.value)
    assert abs(math.log10(best.params["lr"] / BEST_LR)) < 0.05  # within 12% of the optimum
    assert all(LR["lr"].contains(t.params["lr"]) for t in history)
    assert [t.params for t in history[:2]] == [LR.sample(strategy.rng(k)) for k in range(2)]


@pytest.mark.parametrize("cls", STRATEGIES)
def test_says_finished_past_its_budget(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE, n_initial=2, n_iterations=1)
    assert strategy.max_trials() == 3
    decision = strategy.propose(lr_history(2), [2, 3, 4])
    assert len(decision.proposals) == 1 and decision.finished
    assert not strategy.propose(lr_history(2), [2]).finished


@pytest.mark.parametrize("cls", STRATEGIES)
def test_same_seed_and_history_give_the_same_proposal(cls):
    history = lr_history(6)
    first = cls(LR, 3, Direction.MAXIMIZE).propose(history, [6]).proposals
    again = cls(LR, 3, Direction.MAXIMIZE).propose(list(history), [6]).proposals
    assert first == again


@pytest.mark.parametrize("cls", STRATEGIES)
def test_a_long_history_fits_and_conditions_on_the_best_and_a_sample_but_still_finds_the_optimum(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE, n_initial=2, n_iterations=200, max_fit_points=20,
                   max_condition_points=30)
    history = lr_history(60)
    losses = np.array([-t.value for t in history])
    chosen = _subset(losses, 20, np.random.default_rng(0))
    assert len(chosen) == 20 and set(np.argsort(losses)[:10]) <= set(chosen)
    running = [Trial(60, {"lr": 0.3}, TrialState.RUNNING)]
    inputs, found = strategy._observations(history)
    model = strategy._model(inputs, found, [strategy._encode(t.params) for t in running], np.random.default_rng(0))
    assert model.surrogate.n == 31  # 30 observations and the pending point
    proposal = strategy.propose(history, [60]).proposals[0].params["lr"]
    assert abs(math.log10(proposal / BEST_LR)) < 0.3


@pytest.mark.parametrize("cls", STRATEGIES)
def test_constant_liar_spreads_a_batch_and_treats_running_trials_alike(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE)
    history = lr_history(4)
    batch = [p.params["lr"] for p in strategy.propose(history, [4, 5, 6, 7]).proposals]
    assert len(batch) == 4
    logs = np.log10(batch)
    assert min(abs(a - b) for i, a in enumerate(logs) for b in logs[i + 1:]) > 0.01
    # trial 4 running at its proposed point: trial 5 gets what it got inside the batch
    running = Trial(4, {"lr": batch[0]}, TrialState.RUNNING)
    (alone,) = strategy.propose([*history, running], [5]).proposals
    assert alone.params["lr"] == pytest.approx(batch[1], rel=1e-9)


@pytest.mark.parametrize("cls", STRATEGIES)
def test_failed_and_pruned_trials_are_not_observations_when_failures_are_ignored(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE, failed="ignore")
    history = lr_history(5)
    noisy = [*history, Trial(5, {"lr": 0.5}, TrialState.FAILED), Trial(6, {"lr": 0.3}, TrialState.PRUNED, 0.99)]
    assert strategy.propose(noisy, [7]).proposals == strategy.propose(history, [7]).proposals


@pytest.mark.parametrize("cls", STRATEGIES)
def test_a_failed_trial_counts_as_the_worst_loss_by_default(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE)
    history = [*lr_history(5), Trial(5, {"lr": 0.5}, TrialState.FAILED)]
    inputs, losses = strategy._observations(history)
    assert len(inputs) == 6 and losses[-1] == max(losses[:-1])
    assert strategy.propose(history, [6]).proposals != strategy.propose(lr_history(5), [6]).proposals


@pytest.mark.parametrize("cls", STRATEGIES)
def test_waits_for_running_initial_trials_and_falls_back_to_random_without_any(cls):
    strategy = cls(LR, 0, Direction.MAXIMIZE)
    running = [Trial(0, {"lr": 0.1}, TrialState.RUNNING), done(1, {"lr": 0.01}, 0.9)]
    decision = strategy.propose(running, [2, 3])
    assert decision.proposals == [] and not decision.finished
    failed = [Trial(0, {"lr": 0.1}, TrialState.FAILED), done(1, {"lr": 0.01}, 0.9)]
    (proposal,) = strategy.propose(failed, [2]).proposals
    assert proposal.params == LR.sample(strategy.rng(2))


@pytest.mark.parametrize("cls", STRATEGIES)
def test_mixed_numeric_dimensions_give_valid_values(cls):
    space = SearchSpace.from_config({
        "lr": {"type": "log_float", "low": 1e-3, "high": 0.5},
        "momentum": {"type": "float", "low": 0.0, "high": 0.99},
        "batch": {"type": "int", "low": 16, "high": 250, "step": 2, "log": True},
        "layers": {"type": "int", "low": 1, "high": 4},
    })

    def loss(p):
        return (math.log10(p["lr"]) + 1.5) ** 2 + (p["momentum"] - 0.9) ** 2 + abs(p["layers"] - 3) / 10

    strategy = cls(space, 0, Direction.MINIMIZE, n_initial=3, n_iterations=2)
    history = drive(strategy, lambda p, _: loss(p))
    for trial in history:
        assert all(space[name].contains(value) for name, value in trial.params.items()), trial.params
    assert len({tuple(t.params.values()) for t in history}) == len(history)


@pytest.mark.parametrize("loc, scale, dof", [(0.0, 1.0, 3.0), (0.4, 0.3, 5.5), (-1.0, 2.0, 40.0), (0.2, 0.5, math.inf)])
def test_closed_form_ei_matches_numerical_integration(loc, scale, dof):
    best, xi = 0.1, 0.01
    predictive = Predictive(np.array([loc]), np.array([scale]), dof)
    law = stats.norm(loc, scale) if math.isinf(dof) else stats.t(dof, loc, scale)
    numeric, _ = integrate.quad(lambda y: (best - xi - y) * law.pdf(y), -np.inf, best - xi)
    assert expected_improvement(predictive, best, xi)[0] == pytest.approx(numeric, rel=1e-7, abs=1e-12)


def test_ei_is_zero_where_the_predictive_is_certain():
    predictive = Predictive(np.array([-5.0, 0.0]), np.array([0.0, 0.0]))
    assert expected_improvement(predictive, 0.0, 0.01).tolist() == [0.0, 0.0]  # eq. 10's s = 0 branch


def test_gamma_update_with_a_constant_kernel_is_the_textbook_normal_gamma():
    # constant kernel 1/kappa0 with unit noise: y_i = mu + e_i, mu ~ N(0, 1/(kappa0 tau)), e_i ~ N(0, 1/tau)
    kappa0, a0, b0 = 2.0, 1.5, 0.7
    y = np.array([0.3, -0.2, 1.1, 0.4, 0.9])
    n, ybar = len(y), y.mean()
    surrogate = Surrogate(ConstantKernel(1 / kappa0, "fixed") + WhiteKernel(1.0, "fixed"), np.zeros((n, 1)), y)
    predictive = student_t_predictive(surrogate, np.zeros((1, 1)), a0, b0)
    kappa_n, a_n = kappa0 + n, a0 + n / 2  # Murphy (2007), "Conjugate Bayesian analysis of the Gaussian"
    b_n = b0 + 0.5 * np.sum((y - ybar) ** 2) + kappa0 * n * ybar**2 / (2 * kappa_n)
    assert predictive.dof == pytest.approx(2 * a_n)
    assert predictive.loc[0] == pytest.approx(n * ybar / kappa_n)
    assert predictive.scale[0] == pytest.approx(math.sqrt(b_n / (a_n * kappa_n)))


def test_gamma_predictive_tends_to_the_gaussian_as_the_prior_grows_confident():
    rng = np.random.default_rng(0)
    inputs = rng.uniform(size=(8, 1))
    kernel = ConstantKernel(1.0) * Matern(0.3, nu=2.5) + WhiteKernel(1e-3)
    surrogate = Surrogate(kernel, inputs, np.sin(6 * inputs[:, 0]))
    grid = np.linspace(0, 1, 101)[:, None]
    gauss = gaussian_predictive(surrogate, grid)
    gauss_ei = expected_improvement(gauss, -0.5, 0.01)
    gaps = []
    for strength in [1.0, 1e2, 1e4, 1e6]:
        t = student_t_predictive(surrogate, grid, strength, strength)
        np.testing.assert_allclose(t.loc, gauss.loc)
        gaps.append(max(np.max(np.abs(t.scale - gauss.scale)),
                        np.max(np.abs(expected_improvement(t, -0.5, 0.01) - gauss_ei))))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-5 < gaps[0]


def test_gamma_bo_proposes_what_gp_bo_does_under_a_confident_prior():
    history = lr_history(6)
    gp = GaussianProcessBO(LR, 0, Direction.MAXIMIZE).propose(history, [6, 7]).proposals
    gamma = GammaBO(LR, 0, Direction.MAXIMIZE, a0=1e9, b0=1e9).propose(history, [6, 7]).proposals
    weak = GammaBO(LR, 0, Direction.MAXIMIZE, a0=0.6, b0=0.6).propose(history, [6, 7]).proposals
    assert [p.params["lr"] for p in gamma] == pytest.approx([p.params["lr"] for p in gp], rel=1e-4)
    assert [p.params for p in weak] != [p.params for p in gp]


def test_choice_dimensions_and_bad_options_are_config_errors():
    space = SearchSpace.from_config({"lr": {"type": "log_float", "low": 1e-3, "high": 1.0},
                                     "opt": {"type": "choice", "values": ["sgd", "adam"]}})
    for cls in STRATEGIES:
        with pytest.raises(ConfigError, match="'opt' is a choice") as error:
            cls(space, 0, Direction.MINIMIZE)
        assert error.value.key == "space"
    with pytest.raises(ConfigError) as error:
        GammaBO(LR, 0, Direction.MINIMIZE, a0=0.0)
    assert error.value.key == "strategy.a0"
    with pytest.raises(ConfigError) as error:
        GaussianProcessBO(LR, 0, Direction.MINIMIZE, n_initial=1)
    assert error.value.key == "strategy.n_initial"


@pytest.mark.parametrize("cls", STRATEGIES)
def test_artifacts_plot_the_surrogate_for_one_dimension(cls):
    files = cls(LR, 0, Direction.MAXIMIZE).artifacts(lr_history(5))
    assert list(files) == [f"{cls.name}/surrogate.png"]
    assert files[f"{cls.name}/surrogate.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert cls(LR, 0, Direction.MAXIMIZE).artifacts(lr_history(1)) == {}


THREE_D = SearchSpace.from_config({"trainer.lr": {"type": "log_float", "low": 1e-3, "high": 0.3},
                                   "trainer.momentum": {"type": "float", "low": 0.5, "high": 0.99},
                                   "model.dense": {"type": "int", "low": 16, "high": 128, "log": True}})


@pytest.mark.parametrize("cls", STRATEGIES)
def test_artifacts_plot_the_surrogate_through_the_best_trial_in_more_dimensions(cls):
    rng = np.random.default_rng(0)
    history = []
    for k in range(8):
        params = THREE_D.sample(rng)
        history.append(done(k, params, accuracy(params["trainer.lr"]) + 0.1 * params["trainer.momentum"]))
    files = cls(THREE_D, 0, Direction.MAXIMIZE).artifacts(history)
    assert list(files) == [f"{cls.name}/surrogate.png"]
    image = files[f"{cls.name}/surrogate.png"]
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", image[16:24])  # the PNG header's size
    assert width > 2.5 * height  # three panels side by side, one per dimension
    assert cls(THREE_D, 0, Direction.MAXIMIZE).artifacts(history[:1]) == {}
