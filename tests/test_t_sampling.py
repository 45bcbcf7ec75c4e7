"""Staged Student-t sampling on synthetic objectives with a known best combination."""

import math

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from scipy import stats

from src import optimize
from src.config import validate
from src.errors import ConfigError
from src.space import SearchSpace
from src.strategies import make_strategy
from src.strategies.t_sampling import SUITED, Combination
from src.trial import Direction
from tests.conftest import ROOT
from tests.in_memory import drive

CONDITIONS = {"nodes": [2, 4, 6], "layers": [1, 2, 3], "steps": [5, 10, 15]}
SPACE = SearchSpace.from_config({k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()})
# loss contributions: the best combination is nodes=6, layers=2, steps=10
EFFECT = {"nodes": {2: 0.6, 4: 0.3, 6: 0.0}, "layers": {1: 0.2, 2: 0.0, 3: 0.5}, "steps": {5: 0.1, 10: 0.0, 15: 0.2}}


def loss(params, number, noise=0.02):
    return sum(EFFECT[k][v] for k, v in params.items()) + np.random.default_rng(number).normal(0, noise)


def t_sampling(**options):
    return make_strategy("t_sampling", SPACE, 0, Direction.MINIMIZE, {"n_samples": 6, **options})


def test_keeps_the_best_combination_and_drops_clearly_worse_ones():
    strategy = t_sampling()
    history = drive(strategy, loss)
    assert strategy.winner(history).fixed == {"nodes": 6, "layers": 2, "steps": 10}
    first = strategy.stages(history)[0][0]
    kept = {tuple(c.fixed.values()) for c in strategy.survivors(first)}
    assert (6, 2) in kept
    assert (2, 3) not in kept and (2, 1) not in kept  # 0.6 + 0.5 and 0.6 + 0.2 worse: clearly out


def test_combination_counts_per_stage():
    strategy = t_sampling()
    history = drive(strategy, loss)
    stages, order = strategy.stages(history)
    assert order == ("nodes", "layers", "steps") and len(stages) == 2
    assert len(stages[0].combinations) == 9
    assert len(stages[1].combinations) == 3 * len(strategy.survivors(stages[0]))
    for stage in stages:
        assert all(c.scheduled == 6 and len(c.losses) == 6 for c in stage.combinations)
        assert sum(t.tags["stage"] == str(stage.number) for t in history) == 6 * len(stage.combinations)
    assert len(history) == 6 * (9 + len(stages[1].combinations))


def test_unfixed_hyperparameters_are_drawn_at_random_and_fixed_ones_held():
    strategy = t_sampling()
    history = drive(strategy, loss)
    stage1 = [t for t in history if t.tags["stage"] == "1"]
    for trial in stage1:
        assert trial.tags["combination"] == f"nodes={trial.params['nodes']}|layers={trial.params['layers']}"
    assert {t.params["steps"] for t in stage1} == {5, 10, 15}


@pytest.mark.parametrize("scale", ["standard_error", "predictive"])
def test_probability_matches_scipy_on_hand_made_samples(scale):
    samples = (0.41, 0.45, 0.39, 0.52, 0.47)
    criterion = 0.40
    n, mean, sd = len(samples), np.mean(samples), np.std(samples, ddof=1)
    spread = sd / math.sqrt(n) if scale == "standard_error" else sd * math.sqrt(1 + 1 / n)
    expected = stats.t.cdf((criterion - mean) / spread, df=n - 1)
    assert t_sampling(scale=scale).probability(Combination({}, samples), criterion) == pytest.approx(expected)
    assert t_sampling().probability(Combination({}, samples), mean) == pytest.approx(0.5)


def test_an_interrupted_trial_is_proposed_again_and_nothing_repeats():
    plain = drive(t_sampling(), loss)
    interrupted = drive(t_sampling(), loss, interrupt_at=17)
    assert [(t.number, t.params, t.tags) for t in interrupted] == [(t.number, t.params, t.tags) for t in plain]


def test_sequential_sampling_needs_fewer_trainings_for_the_same_winner():
    plain, early = t_sampling(), t_sampling(sequential=True, min_samples=3)
    plain_history, early_history = drive(plain, loss), drive(early, loss)
    assert early.winner(early_history).fixed == plain.winner(plain_history).fixed
    assert len(early_history) < len(plain_history)


def test_ordering_by_sensitivity_puts_the_strongest_factor_first():
    space = SearchSpace.from_config({k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()})
    strategy = make_strategy("t_sampling", space, 0, Direction.MINIMIZE,
                             {"n_samples": 4, "order": ["steps", "layers", "nodes"], "order_by": "sensitivity",
                              "pilot_trials": 27})
    history = drive(strategy, loss)
    _, order = strategy.stages(history)
    assert order[0] == "nodes"  # the largest spread of conditional means (0.6)
    assert sum(t.tags["stage"] == "0" for t in history) == 27
    assert strategy.winner(history).fixed == {"nodes": 6, "layers": 2, "steps": 10}


def test_stage_tables_and_heatmaps():
    strategy = t_sampling()
    history = drive(strategy, loss)
    files = strategy.artifacts(history)
    assert set(files) == {"t_sampling/stage1.csv", "t_sampling/stage1.png", "t_sampling/stage2.csv",
                          "t_sampling/stage2.png", "t_sampling/summary.md"}
    table = files["t_sampling/stage1.csv"].splitlines()
    assert table[0] == "nodes,layers,n,mean,sd,probability,decision" and len(table) == 10
    assert all(files[name][:8] == b"\x89PNG\r\n\x1a\n" and len(files[name]) > 5000 for name in files
               if name.endswith(".png"))
    assert "Winner: nodes=6|layers=2|steps=10" in files["t_sampling/summary.md"]


def test_bad_options_name_the_key():
    with pytest.raises(ConfigError, match="strategy.alpha"):
        t_sampling(alpha=0.7)
    with pytest.raises(ConfigError, match="strategy.order"):
        t_sampling(order=["nodes", "layers"])
    with pytest.raises(ConfigError, match="space.x"):
        make_strategy("t_sampling", SearchSpace.from_config({"x": {"type": "float", "low": 0, "high": 1},
                                                             "y": {"type": "choice", "values": [1, 2]}}),
                      0, Direction.MINIMIZE)


def test_a_study_interrupted_mid_stage_resumes_from_mlflow(store, study_name):
    space = {k: {"type": "choice", "values": v} for k, v in CONDITIONS.items()}
    calls = []

    def objective(params, trial):
        calls.append(trial.number)
        if len(calls) == 20:
            raise KeyboardInterrupt  # Ctrl-C in the middle of stage 1
        return loss(params, trial.number)

    kwargs = dict(strategy_options={"n_samples": 4}, tracking_uri=store, progress=False)
    with pytest.raises(KeyboardInterrupt):
        optimize(objective, space, "t_sampling", study=study_name, **kwargs)
    resumed = optimize(objective, space, "t_sampling", study=study_name, **kwargs)
    reference = optimize(lambda p, t: loss(p, t.number), space, "t_sampling", study=f"{study_name}-ref", **kwargs)
    assert calls.count(19) == 2 and len(calls) == len(reference.trials) + 1
    assert [(t.params, t.tags) for t in resumed.trials] == [(t.params, t.tags) for t in reference.trials]


def test_a_numeric_space_is_refused_naming_the_configs_that_fit():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        with pytest.raises(ConfigError, match="t_sampling needs choice dimensions") as error:
            validate(compose("config", ["strategy=t_sampling"]))  # the default MNIST space
        assert error.value.key == "space.trainer.lr"
        for overrides in SUITED:
            assert overrides in str(error.value)
            assert list(validate(compose("config", ["strategy=t_sampling", *overrides.split()]))), overrides
