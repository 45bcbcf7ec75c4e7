"""GP-BO and Gamma-BO (seed 001) on synthetic objectives, driven in memory without MLflow (one test goes through the
API and MLflow end to end)."""

import math
import struct
import threading

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient
from scipy import integrate, stats
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from hpo_tune import optimize
from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import Decision
from hpo_tune.strategies.bayes import (
    GammaBO,
    GaussianProcessBO,
    Predictive,
    Surrogate,
    expected_improvement,
    gaussian_predictive,
    student_t_predictive,
)
from hpo_tune.strategies.bayes.surrogate import _subset
from hpo_tune.trial import Direction, Proposal, Trial, TrialState
from tests.conftest import ROOT
from tests.driven import drive

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
    # xi below what the best of 60 draws leaves to gain (about 0.001 accuracy): at the default 0.01, EI is zero to
    # 30 digits everywhere and the proposal is wherever rounding leaves it largest
    strategy = cls(LR, 0, Direction.MAXIMIZE, n_initial=2, n_iterations=200, max_fit_points=20,
                   max_condition_points=30, xi=0.001)
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


def test_bad_options_are_config_errors():
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


MIXED = SearchSpace.from_config({
    "x": {"type": "float", "low": -2.0, "high": 2.0},
    "layers": {"type": "int", "low": 1, "high": 8},
    "batch": {"type": "int", "low": 16, "high": 256, "step": 16, "log": True},
    "opt": {"type": "choice", "values": ["a", "b", "c"]},
})


def mixed_loss(p):
    """Best at x = 0.5, 5 layers, batch 64 and opt 'b'; any other optimiser costs 1."""
    return (p["x"] - 0.5) ** 2 + ((p["layers"] - 5) / 4) ** 2 + (math.log2(p["batch"]) - 6) ** 2 / 8 + (p["opt"] != "b")


def inside(space, params):
    return set(params) == set(space) and all(space[name].contains(value) for name, value in params.items())


@pytest.mark.parametrize("cls", STRATEGIES)
def test_a_mixed_space_with_a_choice_is_searched_far_better_than_at_random(cls):
    """Over five seeds (one study of 25 trials can still sit at a neighbouring int): near the optimum and far ahead
    of random search in at least three, and the choice learnt."""
    near, ahead, learnt = 0, 0, []
    for seed in range(5):
        history = drive(cls(MIXED, seed, Direction.MINIMIZE, n_initial=2, n_iterations=23), lambda p, _: mixed_loss(p))
        assert len(history) == 25 and all(inside(MIXED, t.params) for t in history)
        assert len({tuple(t.params.values()) for t in history}) == 25
        best = min(history, key=lambda t: t.value)
        near += best.params["opt"] == "b" and best.value < 0.1
        random_best = min(mixed_loss(MIXED.sample(np.random.default_rng([seed, k]))) for k in range(25))
        ahead += random_best > 2 * best.value
        learnt.append(sum(t.params["opt"] == "b" for t in history[-10:]))
    assert near >= 3 and ahead >= 3
    assert np.mean(learnt) >= 6  # it has learnt where the choice pays (random: 3.3 of the last 10)


class RecordingBO(GaussianProcessBO):
    """Records every point the acquisition is evaluated at."""

    def __init__(self, *args):
        super().__init__(*args)
        self.seen = []

    def predictive(self, surrogate, points):
        self.seen.append(points)
        return super().predictive(surrogate, points)


def test_ei_is_only_evaluated_at_configurations_that_can_run():
    strategy = RecordingBO(MIXED, 0, Direction.MINIMIZE, 2)
    history = [done(k, params, mixed_loss(params)) for k, params in
               enumerate(MIXED.sample(np.random.default_rng(k)) for k in range(6))]
    strategy.propose(history, [6])
    points = np.vstack(strategy.seen)
    assert len(points) > 100
    np.testing.assert_array_equal(strategy.encoding.project(points), points)
    for point in points[:: len(points) // 50]:
        params = strategy.encoding.decode(point)
        assert inside(MIXED, params)
        np.testing.assert_allclose(strategy.encoding.encode(params), point, atol=1e-12)


SMALL = SearchSpace.from_config({"opt": {"type": "choice", "values": ["sgd", "adam"]},
                                 "layers": {"type": "int", "low": 1, "high": 3},
                                 "width": {"type": "int", "low": 8, "high": 32, "step": 8, "log": True}})  # 2 x 3 x 4


@pytest.mark.parametrize("cls", STRATEGIES)
def test_a_small_discrete_space_runs_every_configuration_once_and_then_the_study_finishes(cls):
    strategy = cls(SMALL, 0, Direction.MINIMIZE)
    history = drive(strategy, lambda p, _: p["layers"] + p["width"] / 8 + (p["opt"] == "sgd"), fail={4})
    assert len(history) == 24 and history[4].state is TrialState.FAILED
    assert len({tuple(t.params.values()) for t in history}) == 24
    assert all(inside(SMALL, t.params) for t in history)
    assert strategy.propose(history, [24, 25]) == Decision([], finished=True)
    # a batch takes what is left, no configuration twice, and says the study is finished
    left = [t.params for t in history[-3:]]
    decision = strategy.propose(history[:-3], [21, 22, 23, 24, 25])
    assert decision.finished
    assert sorted(map(str, (p.params for p in decision.proposals))) == sorted(map(str, left))


@pytest.mark.parametrize("cls", STRATEGIES)
def test_running_trials_and_earlier_proposals_of_a_batch_are_not_proposed_again(cls):
    one = SearchSpace.from_config({"opt": {"type": "choice", "values": ["sgd", "adam", "rmsprop"]}})
    strategy = cls(one, 0, Direction.MAXIMIZE)
    history = [done(0, {"opt": "sgd"}, 0.9), done(1, {"opt": "adam"}, 0.5)]
    assert strategy.propose(history, [2, 3]) == Decision([Proposal({"opt": "rmsprop"})], finished=True)
    running = [*history, Trial(2, {"opt": "rmsprop"}, TrialState.RUNNING)]
    assert strategy.propose(running, [3]) == Decision([], finished=True)


@pytest.mark.parametrize("cls", STRATEGIES)
def test_artifacts_plot_the_surrogate_on_a_mixed_space_and_over_a_single_choice(cls):
    history = [done(k, params, mixed_loss(params)) for k, params in
               enumerate(MIXED.sample(np.random.default_rng(k)) for k in range(8))]
    image = cls(MIXED, 0, Direction.MINIMIZE).artifacts(history)[f"{cls.name}/surrogate.png"]
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", image[16:24])
    assert width < 2 * height  # two rows of panels for four dimensions (one row of three is wider)
    one = SearchSpace.from_config({"opt": {"type": "choice", "values": ["sgd", "adam", "rmsprop"]}})
    history = [done(0, {"opt": "sgd"}, 0.9), done(1, {"opt": "adam"}, 0.5)]
    image = cls(one, 0, Direction.MAXIMIZE).artifacts(history)[f"{cls.name}/surrogate.png"]
    assert image[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cls", STRATEGIES)
def test_the_default_mnist_space_is_searched(cls):
    space = SearchSpace.from_config(yaml.safe_load((ROOT / "conf" / "space" / "cnn_mnist.yaml").read_text()))
    assert len(space) == 3

    def accuracy_of(p):
        return accuracy(p["trainer.lr"]) + 0.05 * p["trainer.momentum"] - 0.1 * p["model.dropout"]

    history = drive(cls(space, 0, Direction.MAXIMIZE, n_iterations=6), lambda p, _: accuracy_of(p))
    assert len(history) == 12 and all(inside(space, t.params) for t in history)  # n_initial auto: 2 x 3 dimensions
    assert max(t.value for t in history[6:]) > max(t.value for t in history[:6])


def test_gamma_bo_tunes_a_space_with_a_choice_end_to_end(store, study_name):
    space = {"x": {"type": "float", "low": -2.0, "high": 2.0}, "opt": {"type": "choice", "values": ["a", "b"]}}
    result = optimize(lambda p: (p["x"] - 0.5) ** 2 + (p["opt"] != "b"), space, "gamma_bo", n_trials=6,
                      study=study_name, tracking_uri=store, seed=1, progress=False)
    assert len(result.trials) == 6 and all(t.state is TrialState.COMPLETE for t in result.trials)
    assert len({(t.params["opt"], t.params["x"]) for t in result.trials}) == 6
    assert {t.params["opt"] for t in result.trials} <= {"a", "b"}
    artifacts = MlflowClient(store).list_artifacts(result.parent_run_id, "gamma_bo")
    assert [a.path for a in artifacts] == ["gamma_bo/surrogate.png"]


def test_a_render_beside_a_proposal_leaves_the_process_s_blas_threads_as_they_were():
    from threadpoolctl import threadpool_info

    from hpo_tune.strategies.bayes.strategy import _few_blas_threads

    def blas() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas()
    entered, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:  # enters first, leaves while the second is still inside
        with _few_blas_threads():
            entered.set()
            second_in.wait()
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait()
    with _few_blas_threads():
        second_in.set()
        first_out.wait()
        inside = blas()
    thread.join()
    assert all(n == 1 for n in inside)  # still limited after the first one left
    assert blas() == before  # and restored once both left
