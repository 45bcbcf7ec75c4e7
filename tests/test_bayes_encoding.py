"""How the BOs see a discrete space: choices of numbers as ordinal lattices, other choices under one shared length
scale (a Hamming kernel) or one per level, and a discrete space small enough scored whole."""

import itertools

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.bayes import GammaBO, GaussianProcessBO
from hpo_tune.strategies.bayes.encoding import Encoding
from hpo_tune.strategies.bayes.surrogate import JITTER, GroupedMatern, NegativeLikelihood
from hpo_tune.trial import Direction
from tests.driven import drive

TABLE = SearchSpace.from_config({  # the shape of HPOBench's MLP table: every dimension a list of values
    "lr": {"type": "choice", "values": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]},
    "batch": {"type": "choice", "values": [16, 32, 64, 128]},
    "opt": {"type": "choice", "values": ["sgd", "adam", "rmsprop"]},
    "bias": {"type": "choice", "values": [True, False]},
})


def test_a_choice_of_numbers_is_one_ordinal_column_and_other_choices_are_one_hot():
    encoding = Encoding(TABLE)
    assert [encoding.blocks[n].stop - encoding.blocks[n].start for n in TABLE] == [1, 1, 3, 2]  # booleans: no order
    assert encoding.groups.tolist() == [0, 1, 2, 2, 2, 3, 3]
    params = {"lr": 1e-3, "batch": 128, "opt": "adam", "bias": False}
    point = encoding.encode(params)
    np.testing.assert_allclose(point, [0.5, 1.0, 0, 1, 0, 0, 1])
    assert encoding.decode(point) == params
    assert len(encoding.grid()) == encoding.size == 5 * 4 * 3 * 2
    assert {tuple(encoding.decode(row).values()) for row in encoding.grid()} == {
        tuple(p.values()) for p in (dict(zip(TABLE, values)) for values in
                                    itertools.product(*(d.values for d in TABLE.values())))}
    # an ordinal level moves one step at a time, a categorical one to any other level
    moves = [encoding.decode(row) for row in encoding.neighbours(point)]
    assert sorted(m["lr"] for m in moves if m["lr"] != 1e-3) == [1e-4, 1e-2]
    assert [m["batch"] for m in moves if m["batch"] != 128] == [64]
    assert sorted(m["opt"] for m in moves if m["opt"] != "adam") == ["rmsprop", "sgd"]
    relaxed = np.random.default_rng(0).random((50, encoding.width))
    for row in encoding.project(relaxed):
        np.testing.assert_array_equal(encoding.encode(encoding.decode(row)), row)


def test_n_initial_auto_starts_one_dimension_from_two_points_and_more_dimensions_from_more():
    one = SearchSpace.from_config({"lr": {"type": "log_float", "low": 1e-4, "high": 1.0}})
    assert GaussianProcessBO(one, 0, Direction.MINIMIZE).n_initial == 2  # seed 001's start
    assert GammaBO(TABLE, 0, Direction.MINIMIZE).n_initial == 8 and GammaBO(WIDE, 0, Direction.MINIMIZE).n_initial == 6
    assert GaussianProcessBO(SearchSpace.from_config({f"x{k}": {"type": "float", "low": 0.0, "high": 1.0}
                                                      for k in range(9)}), 0, Direction.MINIMIZE).n_initial == 10
    with pytest.raises(ConfigError, match="strategy.n_initial.*'some'"):
        GaussianProcessBO(one, 0, Direction.MINIMIZE, n_initial="some")


def test_numeric_choices_can_be_categorical_and_a_bad_value_is_one_config_error():
    encoding = Encoding(TABLE, "categorical")
    assert encoding.width == 5 + 4 + 3 + 2
    assert GaussianProcessBO(TABLE, 0, Direction.MINIMIZE, numeric_choices="categorical").encoding.width == 14
    with pytest.raises(ConfigError, match="strategy.numeric_choices.*ordinal.*got 'rank'"):
        GammaBO(TABLE, 0, Direction.MINIMIZE, numeric_choices="rank")


def test_choice_kernel_auto_shares_a_choice_s_length_scale_on_discrete_spaces_only():
    mixed = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0},
                                     "opt": {"type": "choice", "values": ["sgd", "adam", "rmsprop"]}})
    assert Encoding(TABLE).choice_kernel == "hamming" and Encoding(mixed).choice_kernel == "per_level"
    assert Encoding(mixed).groups.tolist() == [0, 1, 2, 3]
    assert Encoding(mixed, choice_kernel="hamming").groups.tolist() == [0, 1, 1, 1]
    assert Encoding(TABLE, choice_kernel="per_level").groups.tolist() == list(range(7))
    for kernel, scales in (("hamming", 4), ("per_level", 7)):  # the fitted kernel has one length scale per group
        bo = GaussianProcessBO(TABLE, 0, Direction.MINIMIZE, choice_kernel=kernel)
        rng = np.random.default_rng(0)
        inputs = [bo.encoding.encode(TABLE.sample(rng)) for _ in range(8)]
        model = bo._model(inputs, list(rng.random(8)), [], rng)
        assert np.atleast_1d(model.surrogate.signal.k2.length_scale).size == scales
    with pytest.raises(ConfigError, match="strategy.choice_kernel.*'per_level'.*got 'overlap'"):
        GammaBO(mixed, 0, Direction.MINIMIZE, choice_kernel="overlap")


def test_grouped_matern_shares_a_length_scale_within_a_group():
    groups = np.array([0, 1, 1, 1])  # a numeric column, then a one-hot block of three levels
    kernel = GroupedMatern(groups, np.array([0.4, 0.7]), (1e-2, 1e1))
    x = np.array([[0.1, 1, 0, 0], [0.1, 0, 1, 0], [0.1, 0, 0, 1], [0.9, 1, 0, 0]])
    gram = kernel(x)
    np.testing.assert_allclose(gram, Matern([0.4, 0.7, 0.7, 0.7], nu=2.5)(x))
    assert gram[0, 1] == pytest.approx(gram[0, 2]) == pytest.approx(gram[1, 2])  # any two levels: equally far


def test_the_likelihood_is_scikit_learns_and_its_gradient_is_right():
    groups = np.array([0, 1, 1, 1, 2])
    rng = np.random.default_rng(0)
    x = np.hstack([rng.random((12, 1)), np.eye(3)[rng.integers(3, size=12)], rng.random((12, 1))])
    y = rng.normal(size=12)
    kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * GroupedMatern(groups, np.full(3, 0.3), (1e-2, 1e1))
              + WhiteKernel(1e-2, (1e-6, 1e0)))
    reference = GaussianProcessRegressor(kernel, alpha=JITTER, optimizer=None).fit(x, y)
    likelihood = NegativeLikelihood(x, y, groups)
    for theta in (kernel.theta, np.log([2.0, 0.1, 1.5, 4.0, 1e-3])):
        value, gradient = likelihood(theta)
        assert value == pytest.approx(-reference.log_marginal_likelihood(theta), rel=1e-10)
        np.testing.assert_allclose(gradient, approx_fprime(theta, lambda t: likelihood(t)[0], 1e-7), rtol=1e-4,
                                   atol=1e-5)


WIDE = SearchSpace.from_config({  # 10 x 10 x 3 configurations
    "lr": {"type": "choice", "values": [float(v) for v in np.logspace(-6, 0, 10)]},
    "batch": {"type": "choice", "values": [2**k for k in range(2, 12)]},
    "opt": {"type": "choice", "values": ["sgd", "adam", "rmsprop"]},
})


def slope(p):
    """Smooth in the ordinal dimensions' ranks, best at the 7th learning rate and batch 32 with adam."""
    return ((np.log10(p["lr"]) + 2) / 0.667) ** 2 + (np.log2(p["batch"]) - 5) ** 2 + (p["opt"] != "adam")


@pytest.mark.parametrize("cls", [GaussianProcessBO, GammaBO])
def test_the_ordinal_encoding_finds_the_best_configuration_sooner_than_one_hot(cls):
    """Ordinal columns let the surrogate carry what one level taught it to the next; one-hot cannot."""
    trials = {}
    for mode in ("ordinal", "categorical"):
        trials[mode] = []
        for seed in range(3):
            history = drive(cls(WIDE, seed, Direction.MINIMIZE, n_initial=4, n_iterations=36, numeric_choices=mode),
                            lambda p, _: slope(p))
            trials[mode].append(next((t.number + 1 for t in history if t.value < 1e-9), len(history) + 1))
    assert max(trials["ordinal"]) <= 20
    assert sum(trials["ordinal"]) < sum(trials["categorical"])


class Scored(GaussianProcessBO):
    """Records how many points each proposal scored."""

    def __init__(self, *args):
        super().__init__(*args)
        self.scored = []

    def predictive(self, surrogate, points):
        self.scored.append(len(points))
        return super().predictive(surrogate, points)


def test_a_discrete_space_of_thousands_is_scored_whole():
    space = SearchSpace.from_config({name: {"type": "choice", "values": list(range(10))} for name in "abcd"})
    strategy = Scored(space, 0, Direction.MINIMIZE, 2)
    history = drive(strategy, lambda p, _: sum((v - 3) ** 2 for v in p.values()), budget=6)
    assert strategy.scored == [10_000] * 4  # every configuration, once per proposal, and no local search after it
    assert len({tuple(t.params.values()) for t in history}) == 6
