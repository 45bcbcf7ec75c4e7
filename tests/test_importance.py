"""Parameter importance: ranked as a study ends and on demand (``python -m src.importance``), for every strategy."""

from __future__ import annotations

import io
import logging
import math
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.errors import ConfigError
from hpo_tune.importance import EVALUATORS, MIN_TRIALS, Unavailable, importances
from hpo_tune.importance_report import recorded_space
from hpo_tune.space import SearchSpace
from hpo_tune.study_config import IMPORTANCE
from hpo_tune.tracking import flatten
from hpo_tune.trial import Direction, Trial, TrialState
from tests.conftest import ROOT

NUMERIC = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "float", "low": 0.0, "high": 1.0}}
CONDITIONS = {"x": {"type": "choice", "values": [0.0, 0.3, 0.9]}, "y": {"type": "choice", "values": [0.1, 0.5, 1.0]}}
# budgets that finish each strategy's plan with at least MIN_TRIALS completed trials, and their cheapest options
STRATEGIES = {
    "random": (12, {}), "grid": (None, {"points": 4}), "gp_bo": (12, {}), "gamma_bo": (12, {}),
    "optuna_tpe": (12, {"n_startup_trials": 6}), "t_sampling": (18, {"n_samples": "auto"}), "factorial_grid": (16, {}),
}


def loss(params):
    """x matters (its best value is 0.3); y does not at all."""
    return (params["x"] - 0.3) ** 2


def parent_files(store: str, run_id: str) -> dict[str, bytes]:
    client = MlflowClient(store)
    return {a.path: open(client.download_artifacts(run_id, a.path), "rb").read()
            for a in client.list_artifacts(run_id) if a.path.startswith("importance")}


def table(files: dict[str, bytes]) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(files["importance.csv"]))


@pytest.fixture(scope="module")
def random_study(store: str) -> tuple[str, str]:
    """A random study that maximises (the objective negated), as the API runs it; its name and parent run."""
    name = f"importance-{uuid.uuid4().hex[:8]}"
    result = optimize(lambda p: -loss(p), NUMERIC, "random", n_trials=20, direction="maximize", study=name,
                      tracking_uri=store, seed=1, progress=False)
    return name, result.parent_run_id


def test_a_finished_study_ranks_the_parameter_that_matters_first_on_its_parent_run(store, random_study):
    files = parent_files(store, random_study[1])
    assert set(files) == {"importance.csv", "importance.png"}
    ranked = table(files)
    assert list(ranked["param"]) == ["x", "y"] and ranked["importance"].sum() == pytest.approx(1.0)
    assert ranked["importance"].iat[0] > 0.8 and set(ranked["evaluator"]) == {"ped_anova"}
    assert files["importance.png"].startswith(b"\x89PNG")


def test_the_command_prints_the_table_and_a_bad_study_is_one_line(store, random_study):
    def command(*args):
        return subprocess.run([sys.executable, "-m", "src.importance", "--tracking-uri", store, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    done = command("--study", random_study[0], "--evaluator", "fanova")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert rows[0][0] == "param" and [r[0] for r in rows[1:]] == ["x", "y"] and float(rows[1][1]) > 0.8
    assert set(table(parent_files(store, random_study[1]))["evaluator"]) == {"fanova"}
    missing = command("--study", "no-such-study")
    assert missing.returncode != 0 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "no study 'no-such-study'" in missing.stderr


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_finished_study_has_its_importance(name, store, study_name):
    n_trials, options = STRATEGIES[name]
    space = CONDITIONS if name == "t_sampling" else NUMERIC
    result = optimize(loss, space, name, n_trials=n_trials, strategy_options=options, study=study_name,
                      tracking_uri=store, progress=False)
    assert sum(t.state is TrialState.COMPLETE for t in result.trials) >= MIN_TRIALS
    ranked = table(parent_files(store, result.parent_run_id)).set_index("param")
    assert list(ranked.index) == ["x", "y"], ranked
    if name == "factorial_grid":  # its OLS main effects beside: x's is the large one, y's exactly none
        assert abs(ranked.at["x", "ols_effect"]) > 0 and ranked.at["y", "ols_effect"] == 0
    else:
        assert "ols_effect" not in ranked


def test_a_study_too_short_to_rank_logs_one_line_and_no_file(store, study_name, caplog):
    with caplog.at_level(logging.INFO, logger="hpo_tune.importance_report"):
        result = optimize(loss, NUMERIC, n_trials=MIN_TRIALS - 1, study=study_name, tracking_uri=store,
                          progress=False)
    assert len(result.trials) == MIN_TRIALS - 1 and parent_files(store, result.parent_run_id) == {}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "hpo_tune.importance_report"]
    assert line == f"parameter importance: none logged, {MIN_TRIALS - 1} completed trials, fewer than the " \
                   f"{MIN_TRIALS} it needs"


def trials_of(values, space_names=("x", "y"), value=lambda p: loss(p)):
    return [Trial(k, dict(zip(space_names, v)), TrialState.COMPLETE, value(dict(zip(space_names, v))))
            for k, v in enumerate(values)]


def test_the_study_direction_decides_which_trials_are_the_best():
    """The best trials (largest) need x near 0.3; only the worst ones need y near 0.7: read as minimising, y would
    rank first."""
    points = np.random.default_rng(0).uniform(size=(60, 2))
    score = lambda p: math.exp(-((p["x"] - 0.3) / 0.1) ** 2) - math.exp(-((p["y"] - 0.7) / 0.1) ** 2)  # noqa: E731
    space = SearchSpace.from_config(NUMERIC)
    trials = trials_of(points, value=score)
    assert list(importances(trials, space, Direction.MAXIMIZE)["param"]) == ["x", "y"]
    assert list(importances(trials, space, Direction.MINIMIZE)["param"]) == ["y", "x"]


def test_values_outside_the_space_are_ranked_too():
    """A factorial grid opened past the bounds, an int off its step, a choice since dropped from the space."""
    space = SearchSpace.from_config({"x": {"type": "log_float", "low": 0.01, "high": 0.1},
                                     "n": {"type": "int", "low": 2, "high": 8, "step": 2},
                                     "c": {"type": "choice", "values": ["a", "b"]}})
    rng = np.random.default_rng(1)
    values = [(float(rng.choice([0.001, 0.01, 0.1, 1.0])), int(rng.integers(1, 10)), str(rng.choice(["a", "b", "z"])))
              for _ in range(30)]
    trials = trials_of(values, ("x", "n", "c"), value=lambda p: math.log10(p["x"]) ** 2)
    for evaluator in EVALUATORS:
        assert importances(trials, space, Direction.MINIMIZE, evaluator)["param"].iat[0] == "x"


@pytest.mark.parametrize("space, values, reason", [
    ({"x": NUMERIC["x"]}, [(v,) for v in np.linspace(0, 1, 12)], "a space of one dimension"),
    (NUMERIC, [(v, 0.5) for v in np.linspace(0, 1, 12)], "1 of the 2 parameters varied"),
    (NUMERIC, [(v, v) for v in np.linspace(0, 1, MIN_TRIALS - 1)], f"{MIN_TRIALS - 1} completed trials"),
])
def test_a_history_that_cannot_rank_says_why(space, values, reason):
    names = tuple(space)
    trials = trials_of(values, names, value=lambda p: p["x"])
    trials.append(Trial(len(trials), dict(zip(names, values[0])), TrialState.FAILED))  # never counted
    with pytest.raises(Unavailable, match=reason):
        importances(trials, SearchSpace.from_config(space), Direction.MINIMIZE)


@pytest.mark.parametrize("config", [
    {"trainer.lr": {"type": "log_float", "low": 1e-4, "high": 0.1},
     "model.units": {"type": "int", "low": 8, "high": 64, "step": 8, "log": False},
     "model.act": {"type": "choice", "values": ["relu", "tanh"]},
     "model.dense": {"type": "choice", "values": [[8], [8, 8]]}},
    {"trainer": {"optimizer": {"type": "choice", "values": ["sgd", "adam"]},
                 "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}}}},
])
def test_the_space_is_read_back_from_what_the_parent_run_recorded(config):
    space = SearchSpace.from_config(config)
    params = flatten({"seed": 0, "space": space.describe()})
    assert recorded_space(params).describe() == space.describe()


def test_the_evaluator_is_an_option_checked_before_anything_runs(tmp_path):
    assert set(IMPORTANCE) == {*EVALUATORS, "none"}
    with pytest.raises(ConfigError, match="importance: must be one of ped_anova, fanova, none"):
        optimize(loss, NUMERIC, n_trials=1, importance="shap", tracking_uri=f"sqlite:///{tmp_path / 'never.db'}")
