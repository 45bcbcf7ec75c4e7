"""Rank warping of the BOs' targets: the GP sees the normal scores of the losses' ranks, so a dead region (a diverged
training, an architecture that does not learn) does not squeeze every good loss into one value."""

import numpy as np
import pytest
from scipy import stats

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.bayes import GammaBO, GaussianProcessBO
from hpo_tune.strategies.bayes.surrogate import fit_model, rank_scores
from hpo_tune.trial import Direction
from tests.driven import drive
from tests.test_bayes_encoding import WIDE, slope


def test_rank_scores_are_normal_scores_that_one_outlier_does_not_move():
    losses = np.array([0.30, 0.10, 0.20, 0.20, 0.50])
    scores = rank_scores(losses)
    np.testing.assert_allclose(scores, stats.norm.ppf((np.array([4, 1, 2.5, 2.5, 5]) - 0.5) / 5))
    assert scores[2] == scores[3] and list(np.argsort(scores, kind="stable")) == [1, 2, 3, 0, 4]
    diverged = losses.copy()
    diverged[4] = 1e6
    np.testing.assert_array_equal(rank_scores(diverged), scores)


def test_a_rank_warped_model_maps_its_targets_back_to_the_observed_losses():
    rng = np.random.default_rng(0)
    inputs = rng.random((8, 2))
    losses = [0.4, 0.1, 0.9, 50.0, 0.3, 0.2, 0.8, 0.5]
    model = fit_model(inputs, losses, [], 0.01, 150, 500, rng, np.array([0, 1]), "rank")
    targets = rank_scores(np.asarray(losses))
    np.testing.assert_allclose(model.objective(targets, 1.0), losses)
    np.testing.assert_allclose(model.objective(targets, -1.0), -np.asarray(losses))
    np.testing.assert_allclose(model.objective(np.array([-9.0, 9.0]), 1.0), [0.1, 50.0])  # held at the extremes
    assert model.best == targets.min()
    plain = fit_model(inputs, losses, [], 0.01, 150, 500, rng, np.array([0, 1]), "none")
    np.testing.assert_allclose(plain.objective((np.asarray(losses) - plain.mean) / plain.sd, 1.0), losses)


def test_auto_warps_discrete_spaces_only_and_a_bad_value_is_one_config_error():
    one = SearchSpace.from_config({"lr": {"type": "log_float", "low": 1e-4, "high": 1.0}})
    assert GaussianProcessBO(one, 0, Direction.MINIMIZE).output_warping == "none"  # seed 001's model, unchanged
    mixed = SearchSpace.from_config({"layers": {"type": "int", "low": 1, "high": 4},
                                     "x": {"type": "float", "low": 0.0, "high": 1.0}})
    assert GammaBO(mixed, 0, Direction.MINIMIZE).output_warping == "none"
    assert GammaBO(WIDE, 0, Direction.MINIMIZE).output_warping == "rank"
    assert GaussianProcessBO(SearchSpace.from_config({"layers": {"type": "int", "low": 1, "high": 4}}), 0,
                             Direction.MINIMIZE).output_warping == "rank"
    assert GammaBO(WIDE, 0, Direction.MINIMIZE, output_warping="none").output_warping == "none"
    with pytest.raises(ConfigError, match="strategy.output_warping.*'rank'.*got 'log'"):
        GaussianProcessBO(WIDE, 0, Direction.MINIMIZE, output_warping="log")


def dead(params):
    """``slope`` with a dead region: large batches or learning rates near 1 lose by a thousand."""
    return 1000.0 if params["batch"] >= 128 or params["lr"] >= 0.3 else slope(params)


@pytest.mark.parametrize("cls", [GaussianProcessBO, GammaBO])
def test_rank_warping_finds_the_best_past_a_dead_region_where_standardised_losses_do_not(cls):
    """Standardised, the dead region's losses make every live one look alike to the GP, and EI goes hunting at
    random; ranked, the GP still sees the slope among the live configurations."""
    trials = {}
    for mode in ("rank", "none"):
        trials[mode] = []
        for seed in range(3):
            history = drive(cls(WIDE, seed, Direction.MINIMIZE, n_initial=4, n_iterations=26, output_warping=mode),
                            lambda p, _: dead(p))
            trials[mode].append(next((t.number + 1 for t in history if t.value < 1e-9), len(history) + 1))
    assert max(trials["rank"]) <= 30
    assert sum(trials["rank"]) < sum(trials["none"])
