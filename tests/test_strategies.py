import itertools

import pytest

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Trial, TrialState

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


NUMERIC = SearchSpace.from_config({
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "lr": {"type": "log_float", "low": 1e-4, "high": 0.1},
    "layers": {"type": "int", "low": 0, "high": 3},
    "units": {"type": "int", "low": 8, "high": 256, "step": 8, "log": True},
})
CONDITIONS = SearchSpace.from_config({f"h{k}": {"type": "choice", "values": [1, 2, 3]} for k in range(3)})


def bowl(params, number):
    """An interior optimum, so strategies that narrow or step would leave the space if they could."""
    x = params.get("x", 0.0)
    return (x - 0.7) ** 2 + (params.get("layers", 2) - 2.5) ** 2 + sum(float(v) for v in params.values()
                                                                     if isinstance(v, int) and v < 4)


@pytest.mark.parametrize("name", ["random", "grid", "gp_bo", "gamma_bo", "optuna_tpe", "factorial_grid",
                                  "t_sampling"])
def test_every_strategy_keeps_its_budget_and_the_declared_space(name):
    from tests.driven import drive

    space = CONDITIONS if name == "t_sampling" else NUMERIC
    budget = 40
    strategy = make_strategy(name, space, 3, Direction.MINIMIZE, n_trials=budget)
    most = strategy.max_trials()
    if name in ("factorial_grid", "t_sampling"):  # they plan by the budget: the plan itself must fit it
        assert most is not None and most <= budget
    history = drive(strategy, bowl, budget=budget)
    if name != "t_sampling":  # t-sampling may reach its decision early, having pruned combinations
        assert len(history) == budget or (most is not None and len(history) == most), (
            f"{name} stopped at {len(history)} of {budget} trials without its own limit saying so")
    for trial in history:
        for key, value in trial.params.items():
            assert space[key].contains(value), f"{name} proposed {key}={value!r} outside {space[key]}"
