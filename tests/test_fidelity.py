"""BOHB's rule: strategies fitted on the highest budget with enough points, and the configs that select it."""

from __future__ import annotations

import pytest

from hpo_tune.errors import ConfigError
from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.fidelity import RungFitted, budget_view
from hpo_tune.study_config import StudyConfig
from hpo_tune.trial import Direction, Trial, TrialState

SPACE = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def trial(number: int, state: TrialState, rungs: dict[int, float], value: float | None = None) -> Trial:
    return Trial(number, {"x": number / 10}, state, value, rungs=rungs, paused=state is TrialState.PRUNED)


def test_the_view_is_the_highest_budget_with_enough_points():
    history = [trial(0, TrialState.COMPLETE, {1: 0.1, 3: 0.3}, 0.9), trial(1, TrialState.PRUNED, {1: 0.2, 3: 0.4}),
               trial(2, TrialState.PRUNED, {1: 0.5, 3: 0.2}), trial(3, TrialState.PRUNED, {1: 0.6}),
               trial(4, TrialState.FAILED, {}), trial(5, TrialState.RUNNING, {1: 0.7})]
    at3 = budget_view(history, min_points=3)  # 1 complete, 3 at rung 3, 5 at rung 1: rung 3
    assert [(t.number, t.state, t.value) for t in at3] == [
        (0, TrialState.COMPLETE, 0.3), (1, TrialState.COMPLETE, 0.4), (2, TrialState.COMPLETE, 0.2),
        (4, TrialState.FAILED, None), (5, TrialState.RUNNING, None)]
    assert [t.value for t in budget_view(history, min_points=5) if t.state is TrialState.COMPLETE] == \
           [0.1, 0.2, 0.5, 0.6, 0.7]  # a running trial that recorded rung 1 is an observation there
    assert budget_view(history, min_points=1) == history  # a complete trial is enough: the final budget
    assert budget_view(history, min_points=9) == history  # no budget has enough: as it is


def test_bohb_is_tpe_on_rungs_and_only_history_strategies_take_rungs():
    bohb = make_strategy("bohb", SPACE, 0, Direction.MAXIMIZE)
    assert isinstance(bohb, RungFitted) and bohb.name == "bohb" and bohb.base.name == "optuna_tpe"
    assert bohb.min_points == 3  # more than d + 1 for d = 1
    gp = make_strategy("gp_bo", SPACE, 0, Direction.MAXIMIZE, {"fidelity": "rungs", "n_iterations": 5})
    assert isinstance(gp, RungFitted) and gp.max_trials() == 7
    with pytest.raises(ConfigError, match="strategy.fidelity"):
        make_strategy("grid", SPACE, 0, Direction.MAXIMIZE, {"fidelity": "rungs"})
    with pytest.raises(ConfigError, match="strategy.fidelity"):
        make_strategy("random", SPACE, 0, Direction.MAXIMIZE, {"fidelity": "epochs"})
    with pytest.raises(ConfigError, match="strategy.fidelity"):
        make_strategy("bohb", SPACE, 0, Direction.MAXIMIZE, {"fidelity": "final"})


def test_rungs_need_a_halving_pruner_and_per_epoch_refuses_one():
    with pytest.raises(ConfigError, match="^pruner: strategy 'bohb' fits on the rungs"):
        StudyConfig(SPACE, "bohb", n_trials=5, metric="acc")
    StudyConfig(SPACE, "bohb", n_trials=5, metric="acc", pruner=Pruner(name="hyperband", max_resource=9))
    halving = {"name": "asha", "max_resource": 9}
    assert isinstance(StudyConfig(SPACE, "gamma_bo", n_trials=5, metric="acc", pruner=halving).search, RungFitted)
    assert not isinstance(StudyConfig(SPACE, "gamma_bo", n_trials=5, metric="acc", pruner=halving,
                                      strategy_options={"fidelity": "final"}).search, RungFitted)
    assert not isinstance(StudyConfig(SPACE, "gamma_bo", n_trials=5, metric="acc").search, RungFitted)
    with pytest.raises(ConfigError, match="^pruner: asha: per_epoch"):
        StudyConfig(SearchSpace.from_config({"trainer.lr": {"type": "float", "low": 0.01, "high": 0.1}}), "per_epoch",
                    n_trials=5, metric="acc", pruner={"name": "asha", "max_resource": 9})


def test_the_bohb_preset_brings_hyperband_unless_told_otherwise(make_config):
    cfg = make_config("strategy=bohb")
    assert cfg.strategy.name == "bohb" and cfg.pruner.name == "hyperband"
    assert cfg.pruner.max_resource == cfg.trainer.epochs
    assert make_config("strategy=bohb", "pruner=asha").pruner.name == "asha"
