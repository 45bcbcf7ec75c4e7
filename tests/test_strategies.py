import itertools

import pytest

from src.errors import ConfigError
from src.space import SearchSpace
from src.strategies import make_strategy
from src.trial import Direction, Trial, TrialState

SPACE = SearchSpace.from_config({
    "a": {"type": "choice", "values": ["x", "y", "z"]},
    "b": {"type": "int", "low": 1, "high": 2},
    "c": {"type": "log_float", "low": 0.01, "high": 1.0},
})


def done(number, params):
    return Trial(number, params, TrialState.COMPLETE, 0.0, f"run{number}")


def test_grid_covers_the_product_exactly_once_in_order():
    grid = make_strategy("grid", SPACE, 0, Direction.MINIMIZE, {"points": 3})
    assert grid.max_trials() == 3 * 2 * 3
    proposed = grid.propose([], list(range(grid.max_trials()))).proposals
    combos = [(p.params["a"], p.params["b"], round(p.params["c"], 9)) for p in proposed]
    assert len(set(combos)) == len(combos) == 18
    assert combos == list(itertools.product(["x", "y", "z"], [1, 2], [0.01, 0.1, 1.0]))


def test_grid_says_finished_past_its_end_and_repeats_points():
    grid = make_strategy("grid", SPACE, 0, Direction.MINIMIZE, {"points": 1, "repeats": 2})
    assert grid.max_trials() == 3 * 2  # one value per numeric dimension, each point twice
    decision = grid.propose([], [4, 5, 6, 7])
    assert [p.params for p in decision.proposals] == [grid.points[2], grid.points[2]]
    assert decision.finished
    assert not grid.propose([], [0]).finished


def test_random_is_deterministic_per_seed_and_trial_number():
    first = make_strategy("random", SPACE, 7, Direction.MINIMIZE)
    again = make_strategy("random", SPACE, 7, Direction.MINIMIZE)
    other = make_strategy("random", SPACE, 8, Direction.MINIMIZE)
    batch = [p.params for p in first.propose([], [0, 1, 2, 3]).proposals]
    assert batch == [p.params for p in again.propose([], [0, 1, 2, 3]).proposals]
    assert batch != [p.params for p in other.propose([], [0, 1, 2, 3]).proposals]
    # trial 2 gets the same draw whatever ran before it, so a retried trial is the same trial
    history = [done(0, batch[0]), done(1, batch[1])]
    assert again.propose(history, [2]).proposals[0].params == batch[2]
    assert len({str(p) for p in batch}) == 4


def test_unknown_strategy_or_option_names_the_key():
    with pytest.raises(ConfigError, match="strategy.name"):
        make_strategy("annealing", SPACE, 0, Direction.MINIMIZE)
    with pytest.raises(ConfigError, match="strategy.pionts"):
        make_strategy("grid", SPACE, 0, Direction.MINIMIZE, {"pionts": 3})
    with pytest.raises(ConfigError, match="strategy.points"):
        make_strategy("grid", SPACE, 0, Direction.MINIMIZE, {"points": 0})
