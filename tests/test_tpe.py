import math

import pytest

from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.tpe import distribution, frozen_trial
from hpo_tune.trial import Direction, Trial, TrialState
from tests.driven import drive

SPACE = SearchSpace.from_config({
    "x": {"type": "float", "low": -4.0, "high": 4.0}, "lr": {"type": "log_float", "low": 1e-4, "high": 1.0},
    "k": {"type": "choice", "values": [1, 2, 3]}, "n": {"type": "int", "low": 1, "high": 9, "step": 2},
})


def loss(params):
    return (params["x"] - 1) ** 2 + params["k"] + math.log10(params["lr"] / 1e-2) ** 2 + abs(params["n"] - 5) / 4


def test_tpe_beats_its_random_start_and_is_deterministic():
    tpe = make_strategy("optuna_tpe", SPACE, 0, Direction.MINIMIZE, {"n_startup_trials": 10})
    history = drive(tpe, lambda p, _: loss(p), budget=60)
    assert [t.params for t in history] == [t.params for t in drive(tpe, lambda p, _: loss(p), budget=60)]
    best_random = min(t.value for t in history[:10])
    assert min(t.value for t in history[10:]) < best_random - 1.0
    assert min(t.value for t in history) < 1.6  # the optimum is 1.0 (x=1, k=1, lr=1e-2, n=5)


def test_running_trials_push_proposals_apart():
    tpe = make_strategy("optuna_tpe", SPACE, 0, Direction.MINIMIZE, {"n_startup_trials": 2})
    history = drive(tpe, lambda p, _: loss(p), budget=12)
    (alone,) = tpe.propose(history, [13]).proposals
    running = [*history, Trial(12, alone.params, TrialState.RUNNING)]  # that very point is being trained
    assert tpe.propose(running, [13]).proposals[0].params != alone.params
    batch = tpe.propose(history, [12, 13, 14]).proposals
    assert len({str(p.params) for p in batch}) == 3


def test_maximising_mirrors_minimising():
    mirrored = make_strategy("optuna_tpe", SPACE, 0, Direction.MAXIMIZE, {"n_startup_trials": 5})
    history = []
    for number in range(30):
        (proposal,) = mirrored.propose(history, [number]).proposals
        history.append(Trial(number, proposal.params, TrialState.COMPLETE, -loss(proposal.params)))
    assert max(t.value for t in history[5:]) > max(t.value for t in history[:5])


def test_dimensions_map_to_optuna_distributions():
    assert distribution(SPACE["lr"]).log and distribution(SPACE["n"]).step == 2
    assert distribution(SPACE["k"]).choices == (1, 2, 3)
    with pytest.raises(ConfigError, match="strategy.n_startup_trials"):
        make_strategy("optuna_tpe", SPACE, 0, Direction.MINIMIZE, {"n_startup_trials": -1})


def test_a_pruned_trial_reaches_optuna_with_its_curve_so_tpe_ranks_it_by_how_far_it_got():
    from hpo_tune.space import SearchSpace
    from hpo_tune.strategies import make_strategy
    from hpo_tune.trial import Direction, Trial, TrialState

    tpe = make_strategy("optuna_tpe", SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}}), 0,
                        Direction.MAXIMIZE)
    pruned = frozen_trial(Trial(3, {"x": 0.2}, TrialState.PRUNED, curve={1: 0.4, 3: float("nan")}), tpe.distributions)
    assert pruned.state.name == "PRUNED" and pruned.intermediate_values == {1: 0.4}
    complete = frozen_trial(Trial(4, {"x": 0.3}, TrialState.COMPLETE, 0.9, curve={1: 0.5}), tpe.distributions)
    assert complete.intermediate_values == {}
