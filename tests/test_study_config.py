"""One typed configuration: every bad value the README names is one line naming its key (exit 2, nothing tracked),
through the CLI's path and the Python API's, and the strategy and executor a study runs are the ones checked.

The CLI's path runs in-process (Hydra's compose API, then ``hpo_tune.tune.run`` under the CLI's error handling), so
each case costs milliseconds; ``tests/test_cli.py`` runs one of them as a real command.
"""

import dataclasses
import inspect
from collections import Counter

import pytest
from hydra import compose, initialize_config_dir

import hpo_tune.config
import hpo_tune.study_config
from hpo_tune import optimize
from hpo_tune.cli import cli_errors
from hpo_tune.errors import ConfigError
from hpo_tune.strategies.base import Strategy
from hpo_tune.study_config import StudyConfig
from hpo_tune.tune import run
from tests.conftest import ROOT, TINY

pytestmark = pytest.mark.usefixtures("mnist_available")

# (overrides, the start of the one line printed): first the README's bad values (*Configuration*, *Errors*),
# then each StudyConfig check named by its Hydra key.
README = [
    (["strategy=foo"], "error: strategy=foo: no such option (available:"),
    (["trainer.epoch=2"], "error: Could not override 'trainer.epoch'."),
    (["+space.trainer.optimizer={type: choice, values: []}"], "error: space.trainer.optimizer.values:"),
    (["space.trainer.lr.low=0.9"], "error: space.trainer.lr.low: low (0.9) must not exceed high (0.3)"),
    (["n_trials=0"], "error: n_trials: must be >= 1, got 0"),
    (["trainer.epochs=-1"], "error: trainer.epochs: must be >= 0, got -1"),
    (["strategy=grid", "+strategy.pionts=3"], "error: strategy.pionts: not an option of strategy 'grid'"),
    (["+trainer.epoch=2"], "error: trainer.epoch: no such setting (did you mean trainer.epochs?)"),
    (["strategy=factorial_grid", "n_trials=6"], "error: n_trials: 6 trials cannot run the full 2^3 design (8 runs"),
    (["strategy=t_sampling"], "error: space.trainer.lr: t_sampling needs choice dimensions"),
    (["device=cuda:63"], "error: device: cuda:63: "),  # a GPU this machine lacks
    (["tracking.uri=not-a-uri://x"], "error: tracking.uri: 'not-a-uri://x' is not a tracking URI"),
    (["tracking.uri=sqlite:////proc/mlflow.db"], "error: tracking.uri: cannot create the store /proc/mlflow.db"),
    (["tracking.uri=http://127.0.0.1:9"], "error: tracking.uri: cannot reach the tracking server"),
    (["tracking.uri=postgresql+psycopg2://u@127.0.0.1:9/x"], "error: tracking.uri: cannot connect to the database"),
]
CHECKS = [
    (["trainer.epochs=two"], "error: trainer.epochs: must be an integer, got 'two'"),
    (["dataset.subset=-5"], "error: dataset.subset:"),
    (["seed=1.5"], "error: seed: must be an integer, got 1.5"),
    (["n_trials=null"], "error: n_trials: strategy 'random' never finishes by itself: set n_trials"),
    (["study="], "error: study: the study name must not be empty"),
    (["device=gpu"], "error: device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["objective.direction=up"], "error: objective.direction: must be minimize or maximize, got 'up'"),
    (["tracking.log_models=some"], "error: tracking.log_models: must be one of best, all, none, got 'some'"),
    (["max_retries=-1"], "error: max_retries: must be >= 0, got -1"),
    (["checkpoint_every=two"], "error: checkpoint_every: must be an integer, got 'two'"),
    (["retry_failed=3"], "error: retry_failed: must be true or false, got 3"),
    (["heartbeat.interval_s=0"], "error: heartbeat.interval_s: must be a positive number of seconds, got 0"),
    (["heartbeat.stale_after_s=15"], "error: heartbeat.stale_after_s: must exceed twice the heartbeat interval (10 s)"),
    (["pruner=median", "+pruner.patience=3"], "error: pruner: Pruner.__init__() got an unexpected keyword argument"),
    (["pruner=t_test", "pruner.alpha=2"], "error: pruner.alpha: must be in (0, 1), got 2"),
    (["pruner=hyperband", "pruner.mode=pause"], "error: pruner.mode: must be one of ['stop', 'promote'], got 'pause'"),
    (["pruner=asha"], "error: pruner.max_resource: must be an integer above min_resource (1), got 1 (the CLI's"),
    (["pruner=asha", "trainer.epochs=3", "pruner.reduction_factor=1"], "error: pruner.reduction_factor: must be an"),
    (["strategy=bohb", "pruner=median"], "error: pruner: strategy 'bohb' fits on the rungs of a halving pruner"),
    (["strategy=grid", "+strategy.fidelity=rungs"], "error: strategy.fidelity: rungs: only"),
    (["executor=process", "executor.n_workers=0"], "error: executor.n_workers: must be >= 1, got 0"),
    (["executor=process", "+executor.threads=2"], "error: executor: bad options for executor 'process'"),
    (["+model.droput=0.1"], "error: model.droput: no such setting (did you mean model.dropout?)"),
    (["+dataset.subsets=10"], "error: dataset.subsets: no such setting (did you mean dataset.subset?)"),
    (["+trainer.warmup=3"], "error: trainer.warmup: no such setting (trainer's settings: batch_size, channels_last,"),
]


@pytest.mark.parametrize(("overrides", "line"), README + CHECKS, ids=[" ".join(o) for o, _ in README + CHECKS])
def test_a_bad_value_is_one_line_naming_its_key_and_exit_2_before_anything_is_tracked(tmp_path, capsys, overrides,
                                                                                       line):
    store = tmp_path / "mlflow.db"
    with pytest.raises(SystemExit) as exit, cli_errors():
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", [*TINY, f"tracking.uri=sqlite:///{store}", *overrides])
        run(cfg)
    assert exit.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not store.exists()


SPACE = {"x": {"type": "float", "low": -4.0, "high": 4.0}}


def quadratic(params):
    return params["x"] ** 2


@pytest.mark.parametrize(("arguments", "key"), [
    ({"n_trials": 0}, "n_trials"),
    ({"n_trials": None}, "n_trials"),  # random never finishes by itself
    ({"strategy": "factorial_grid", "n_trials": 1}, "n_trials"),
    ({"direction": "down"}, "direction"),
    ({"seed": "one"}, "seed"),
    ({"study": " "}, "study"),
    ({"device": "gpu"}, "device"),
    ({"log_models": "some"}, "log_models"),
    ({"max_retries": -1}, "max_retries"),
    ({"checkpoint_every": -2}, "checkpoint_every"),
    ({"retry_failed": "yes"}, "retry_failed"),
    ({"heartbeat_interval_s": 0}, "heartbeat_interval_s"),
    ({"stale_after_s": 15}, "stale_after_s"),
    ({"poll_interval_s": 0}, "poll_interval_s"),
    ({"pruner": {"nme": "median"}}, "pruner"),
    ({"pruner": {"name": "median"}}, "metric"),  # a pruner needs the metric it watches
    ({"strategy": "annealing"}, "strategy.name"),
    ({"strategy": "grid", "strategy_options": {"pionts": 3}}, "strategy.pionts"),
    ({"executor": "threads"}, "executor.name"),
])
def test_the_api_names_the_argument_at_fault_before_anything_is_tracked(tmp_path, arguments, key):
    store = tmp_path / "mlflow.db"
    with pytest.raises(ConfigError) as error:
        optimize(quadratic, SPACE, **{"n_trials": 3, **arguments}, tracking_uri=f"sqlite:///{store}")
    assert error.value.key == key, error.value
    assert not store.exists()


def test_optimize_takes_the_study_configs_fields_with_its_defaults():
    """``optimize`` hands its arguments to ``StudyConfig`` as they are: the same names, the same defaults."""
    parameters = inspect.signature(optimize).parameters
    fields = {f.name: f.default for f in dataclasses.fields(StudyConfig) if f.init}
    assert set(parameters) - {"objective", "data"} == set(fields)
    assert {name: parameters[name].default for name in fields if name != "space"} == {
        name: default for name, default in fields.items() if name != "space"}


def test_the_cli_builds_its_strategy_and_executor_once_with_the_budget(make_config, monkeypatch):
    calls = Counter()

    def count(owner, name):
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    count(hpo_tune.study_config, "make_strategy")
    count(hpo_tune.config, "make_executor")
    count(hpo_tune.study_config, "make_executor")  # not built a second time from a name
    count(Strategy, "fit_budget")
    result = run(make_config("strategy=grid", "strategy.points=2", "n_trials=2"))
    assert len(result.trials) == 2
    assert calls == {"make_strategy": 1, "make_executor": 1, "fit_budget": 1}
