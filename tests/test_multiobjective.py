"""Studies of several objectives: the Pareto front through the API and the CLI, resumed, and what is refused."""

import csv
import io
import itertools
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.errors import ConfigError
from hpo_tune.pareto import pareto_front
from hpo_tune.trial import Direction, Trial, TrialState
from tests.conftest import TINY, children, cli, interrupted_at, runs

SPACE = {"x": {"type": "float", "low": -1.0, "high": 3.0}, "y": {"type": "float", "low": -1.0, "high": 2.0}}
DIRECTIONS, METRICS = ["minimize", "maximize"], ["near_origin", "near_two"]
OPTIONS = {"nsga2": {"population_size": 4}, "optuna_tpe": {"n_startup_trials": 4}, "random": {}}


def two_objectives(params):
    """Two conflicting goals: be near (0, 0), and (maximised, so negated) be near (2, 1)."""
    x, y = params["x"], params["y"]
    return {"near_origin": x**2 + y**2, "near_two": -((x - 2) ** 2 + (y - 1) ** 2), "unused": 0.0}


def study(objective, strategy, store, name, n_trials=12, **kwargs):
    return optimize(objective, SPACE, strategy, n_trials, directions=DIRECTIONS, metrics=METRICS, study=name,
                    tracking_uri=store, strategy_options=OPTIONS[strategy], progress=False, importance="none",
                    **kwargs)


def brute_force_front(trials, directions):
    """The trials no other beats on every objective: the definition, one pair at a time."""
    signs = [1 if d is Direction.MINIMIZE else -1 for d in directions]

    def dominates(a, b):
        pairs = [(s * u, s * v) for s, u, v in zip(signs, a.values, b.values)]
        return all(u <= v for u, v in pairs) and any(u < v for u, v in pairs)

    return [t for t in trials if not any(dominates(other, t) for other in trials)]


def test_pareto_front_is_the_non_dominated_set():
    rng = np.random.default_rng(0)
    directions = [Direction.MINIMIZE, Direction.MAXIMIZE, Direction.MINIMIZE]
    values = rng.integers(0, 6, size=(60, 3)).astype(float)  # small integers: ties and duplicates happen
    trials = [Trial(i, {}, TrialState.COMPLETE, v[0], values=tuple(v)) for i, v in enumerate(values)]
    trials.append(Trial(60, {}, TrialState.FAILED))
    front = pareto_front(trials, directions)
    assert front == brute_force_front(trials[:60], directions)
    assert 1 < len(front) < 60
    assert pareto_front([], directions) == []


@pytest.mark.parametrize("strategy", sorted(OPTIONS))
def test_a_study_of_two_objectives_ends_with_its_front_on_the_parent(strategy, store, study_name):
    result = study(two_objectives, strategy, store, study_name)
    assert result.best is None and len(result.trials) == 12
    for trial in result.trials:
        near_origin, near_two = two_objectives(trial.params)["near_origin"], two_objectives(trial.params)["near_two"]
        assert trial.values == pytest.approx((near_origin, near_two)) and trial.value == trial.values[0]
    assert result.pareto == brute_force_front(result.trials, [Direction.MINIMIZE, Direction.MAXIMIZE])
    assert len(result.pareto) >= 2

    client = MlflowClient(store)
    parent = client.get_run(result.parent_run_id)
    assert set(parent.data.tags["pareto_run_ids"].split(",")) == {t.run_id for t in result.pareto}
    assert (parent.data.params["directions"], parent.data.params["metrics"]) == ("minimize,maximize", ",".join(METRICS))
    assert {"pareto.csv", "pareto.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    rows = list(csv.DictReader(io.StringIO(read(client, parent.info.run_id, "pareto.csv"))))
    assert sorted(int(row["trial"]) for row in rows) == sorted(t.number for t in result.pareto)
    assert {float(row["near_origin"]) for row in rows} == {t.values[0] for t in result.pareto}
    kid = next(k for k in children(store, result.parent_run_id) if k.info.run_id == result.pareto[0].run_id)
    assert (kid.data.metrics["objective_0"], kid.data.metrics["objective_1"]) == result.pareto[0].values
    if strategy == "nsga2":  # the generations Optuna filed its trials under, kept for the next proposal
        generations = [json.loads(t.tags["optuna_attrs"])["NSGAIISampler:generation"] for t in result.trials[4:]]
        assert max(generations) >= 1


def read(client, run_id, path):
    with open(client.download_artifacts(run_id, path), encoding="utf-8") as file:
        return file.read()


@pytest.mark.parametrize("strategy", ["nsga2", "optuna_tpe"])
def test_an_interrupted_study_resumes_with_its_values_and_reruns_nothing_finished(strategy, store, study_name):
    with pytest.raises(KeyboardInterrupt):
        study(interrupted_at(7, two_objectives, []), strategy, store, study_name)
    parent = runs(store, f"tags.study = '{study_name}'")[0]
    before = {int(k.data.tags["trial"]): k.info.run_id for k in children(store, parent.info.run_id)
              if k.info.status == "FINISHED"}
    resumed = study(two_objectives, strategy, store, study_name)
    reference = study(two_objectives, strategy, store, f"{study_name}-reference")
    assert [(t.number, t.params, t.values) for t in resumed.trials] == [
        (t.number, t.params, t.values) for t in reference.trials]
    assert sorted(before) == list(range(6))
    assert all(resumed.trials[k].run_id == run_id for k, run_id in before.items())  # not run again
    finished = [k for k in children(store, resumed.parent_run_id) if k.info.status == "FINISHED"]
    assert sorted(int(k.data.tags["trial"]) for k in finished) == list(range(12))
    assert [t.number for t in resumed.pareto] == [t.number for t in reference.pareto]


@pytest.mark.parametrize(("options", "key", "words"), [
    ({"strategy": "gp_bo"}, "strategy.name", "'gp_bo' optimises one objective"),
    ({"strategy": "grid"}, "strategy.name", "'grid' optimises one objective"),
    ({"metrics": ["a", "b", "c"]}, "metrics", "3 metrics for 2 directions"),
    ({"metrics": None}, "metrics", "two or more objectives"),
    ({"directions": ["minimize"], "metrics": ["a"]}, "directions", "two or more objectives"),
    ({"directions": ["minimize", "up"]}, "directions", "minimize or maximize"),
    ({"metrics": ["a", "a"]}, "metrics", "another metric"),
    ({"pruner": {"name": "median"}}, "pruner", "several objectives takes none"),
])
def test_what_cannot_search_several_objectives_is_refused_in_one_line(options, key, words, store, study_name):
    arguments = {"strategy": "random", "directions": ["minimize", "maximize"], "metrics": ["a", "b"], **options}
    with pytest.raises(ConfigError) as refused:
        optimize(two_objectives, SPACE, n_trials=4, study=study_name, tracking_uri=store, progress=False,
                 **arguments)
    assert refused.value.key == key and words in str(refused.value) and "\n" not in str(refused.value)


def test_a_trial_missing_an_objective_fails_naming_it(store, study_name):
    result = optimize(lambda params: {"near_origin": 1.0}, SPACE, "random", 2, directions=DIRECTIONS,
                      metrics=METRICS, study=study_name, tracking_uri=store, progress=False, importance="none")
    assert result.pareto == [] and result.errors == {
        "KeyError: \"the objective returned ['near_origin'] but not near_two\"": 2}


@pytest.mark.usefixtures("mnist_available")
def test_a_two_objective_cli_study_on_mnist_logs_a_front_and_resumes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "dataset.subset=1000", "dataset.val_size=200", "trainer.epochs=2", "threads=1",
            f"tracking.uri={uri}", "strategy=nsga2", "strategy.population_size=4", "directions=[maximize,minimize]",
            "metrics=[val_accuracy,n_params]", "model.dense=8", "+model.dense_layers=1", "model.dropout=0",
            "~space.trainer", "~space.model.dropout", "+space.model.dense={type:int,low:1,high:64,log:true}"]
    done = cli(*args, "n_trials=8")
    assert done.returncode == 0, done.stderr
    parent = runs(uri, "tags.study = 'nsga2-mnist-cnn_mnist'")[0]
    client = MlflowClient(uri)
    rows = list(csv.DictReader(io.StringIO(read(client, parent.info.run_id, "pareto.csv"))))
    assert len(rows) >= 3
    assert len(parent.data.tags["pareto_run_ids"].split(",")) == len(rows)
    assert "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    widths = sorted((float(row["n_params"]), float(row["val_accuracy"])) for row in rows)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(widths))  # a larger model is on it only if more accurate
    first = {k.data.tags["trial"]: k.info.run_id for k in children(uri, parent.info.run_id)}

    again = cli(*args, "n_trials=9")
    assert again.returncode == 0, again.stderr
    kids = children(uri, parent.info.run_id)
    assert sorted(int(k.data.tags["trial"]) for k in kids) == list(range(9))
    assert {k.data.tags["trial"]: k.info.run_id for k in kids if int(k.data.tags["trial"]) < 8} == first
    assert all({"objective_0", "objective_1"} <= set(k.data.metrics) for k in kids)
    summary = json.loads(again.stdout[again.stdout.index("{"):])
    assert summary["metrics"] == ["val_accuracy", "n_params"] and len(summary["pareto"]) >= 3
