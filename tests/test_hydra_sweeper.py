"""``hydra/sweeper=hpo`` on Hydra apps that know nothing of this project, run as their users run them: the
app's own ``python train.py --multirun ...`` in a folder outside this repository, with this package importable
as an installed one is (``hpo_tune`` and ``hydra_plugins`` on the path, not this checkout's root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, children, interruptible, runs

EXAMPLE = ROOT / "examples" / "hydra_app"
SPACE = ["hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))", "hydra.sweeper.params.layers=int(interval(1, 4))",
         "hydra.sweeper.params.act=choice(relu, tanh)"]
APP = '''
import time

import hydra
import mlflow
from omegaconf import DictConfig

from hpo_tune import current_trial
from src.score import score


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    trial = current_trial()
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.sleep)
        value = score(cfg.act, cfg.width) / epoch
        mlflow.log_metric("my_score", value, step=epoch)
        trial.report(epoch, {"loss": value})
    return {"loss": value}


if __name__ == "__main__":
    main()
'''
CONFIG = "act: relu\nwidth: 8\nepochs: 1\nsleep: 0.0\n"
SWEEPER_IN_YAML = """
defaults:
  - override hydra/sweeper: hpo
  - _self_
hydra:
  sweeper:
    n_trials: 8
    metric: loss
    progress: false
    pruner:
      name: median
      min_trials: 2
    params:
      act: choice(relu, tanh, sigmoid)
      width: 8,16
"""
SCORE = '''def score(act, width):
    return {"relu": 1.0, "tanh": 2.0, "sigmoid": 3.0}[act] + abs(width - 16) / 16
'''


def environment() -> dict[str, str]:
    """This package importable as an installed one is; Hydra's own short errors (no full traceback)."""
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return env | {"PYTHONPATH": str(ROOT / "src")}


def sweep(app: Path, store: str, *overrides: str, script: str = "train.py", wait: bool = True,
          timeout: float = 240) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, script, "--multirun", "hydra/sweeper=hpo", f"hydra.sweeper.tracking_uri={store}",
               "hydra.sweeper.progress=false", *overrides]
    if not wait:
        return subprocess.Popen(command, cwd=app, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=interruptible)
    return subprocess.run(command, cwd=app, env=environment(), capture_output=True, text=True, timeout=timeout)


def study_runs(store: str, study: str) -> tuple:
    """The study's parent run and its children."""
    parents = runs(store, f"tags.study = '{study}'")
    assert len(parents) == 1, f"{len(parents)} parents for {study}"
    return parents[0], children(store, parents[0].info.run_id)


def trial_running(store: str, study: str) -> bool:
    parents = runs(store, f"tags.study = '{study}'")
    return bool(parents) and any(r.info.status == "RUNNING" for r in children(store, parents[0].info.run_id))


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    """A torch-free app with its own ``src`` package, whose task reports its curve to ``current_trial()``."""
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "src").mkdir()
    (app / "train.py").write_text(APP)
    (app / "conf" / "config.yaml").write_text(CONFIG)
    (app / "src" / "__init__.py").write_text("")
    (app / "src" / "score.py").write_text(SCORE)
    return app


def test_the_example_app_is_tuned_from_its_own_folder_and_a_larger_n_trials_adds_only_the_missing_trials(
        tmp_path, store, study_name):
    app = tmp_path / "hydra_app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("mlflow.db*", "multirun", "outputs", "mlruns"))
    first = sweep(app, store, "hydra.sweeper.strategy=gamma_bo", "hydra.sweeper.n_trials=8",
                  "hydra.sweeper.metric=val_loss", f"hydra.sweeper.study={study_name}", "epochs=1", *SPACE)
    assert first.returncode == 0, first.stderr
    parent, trials = study_runs(store, study_name)
    assert sorted(int(t.data.tags["trial"]) for t in trials) == list(range(8))
    assert {t.info.status for t in trials} == {"FINISHED"}
    assert all(t.data.metrics["val_accuracy"] > 0 for t in trials)  # logged by the app's own mlflow.log_metrics
    assert set(trials[0].data.params) == {"lr", "layers", "act"}
    client = MlflowClient(store)
    assert [a.path for a in client.list_artifacts(trials[0].info.run_id, "hydra/.hydra")] == [
        "hydra/.hydra/config.yaml", "hydra/.hydra/hydra.yaml", "hydra/.hydra/overrides.yaml"]
    overrides = Path(client.download_artifacts(trials[0].info.run_id, "hydra/.hydra/overrides.yaml", str(tmp_path)))
    assert "- epochs=1" in overrides.read_text() and "- act=" in overrides.read_text()
    assert client.get_experiment(parent.info.experiment_id).name == "train"  # the app's job name

    more = sweep(app, store, "hydra.sweeper.strategy=gamma_bo", "hydra.sweeper.n_trials=10",
                 "hydra.sweeper.metric=val_loss", f"hydra.sweeper.study={study_name}", "epochs=1", *SPACE)
    assert more.returncode == 0, more.stderr
    again, trials_now = study_runs(store, study_name)
    assert again.info.run_id == parent.info.run_id
    assert sorted(int(t.data.tags["trial"]) for t in trials_now) == list(range(10))
    assert {t.info.run_id for t in trials} < {t.info.run_id for t in trials_now}


def test_random_and_t_sampling_tune_choice_params_in_worker_processes(tiny_app, store, study_name):
    choices = ["hydra.sweeper.params.act=choice(relu, tanh, sigmoid)", "hydra.sweeper.params.width=8,16"]
    for strategy, n_trials, extra in (("random", 4, []), ("t_sampling", 12, [
            "hydra.sweeper.executor.name=process", "hydra.sweeper.executor.n_workers=2"])):
        done = sweep(tiny_app, store, f"hydra.sweeper.strategy={strategy}", f"hydra.sweeper.n_trials={n_trials}",
                     f"hydra.sweeper.study={study_name}-{strategy}", "hydra.sweeper.metric=loss", *choices, *extra)
        assert done.returncode == 0, done.stderr
        parent, trials = study_runs(store, f"{study_name}-{strategy}")
        assert sorted(int(t.data.tags["trial"]) for t in trials) == list(range(n_trials))
        assert all("my_score" in t.data.metrics for t in trials)
        assert {t.data.params["act"] for t in trials} <= {"relu", "tanh", "sigmoid"}
    assert parent.data.metrics["best_objective"] == 1.0  # t_sampling found relu with width 16


def test_two_processes_on_one_study_run_each_trial_number_once(tiny_app, store, study_name):
    args = ("hydra.sweeper.n_trials=8", f"hydra.sweeper.study={study_name}", "hydra.sweeper.metric=loss",
            "hydra.sweeper.params.act=choice(relu, tanh, sigmoid)", "hydra.sweeper.params.width=int(interval(1, 32))",
            "sleep=0.3")
    both = [sweep(tiny_app, store, *args, wait=False) for _ in range(2)]
    for process in both:
        assert process.wait(timeout=240) == 0, process.stderr.read()
    _, trials = study_runs(store, study_name)
    numbers = sorted(int(t.data.tags["trial"]) for t in trials)
    assert numbers == list(range(8))
    assert len({t.data.tags["pid"] for t in trials}) == 2  # both processes ran trials


def test_a_median_pruner_stops_curves_the_task_reports_to_current_trial(tiny_app, store, study_name):
    (tiny_app / "conf" / "config.yaml").write_text(CONFIG + SWEEPER_IN_YAML)  # the sweeper set in the app's config
    done = subprocess.run([sys.executable, "train.py", "--multirun", f"hydra.sweeper.tracking_uri={store}",
                           f"hydra.sweeper.study={study_name}", "epochs=3"], cwd=tiny_app, env=environment(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    _, trials = study_runs(store, study_name)
    pruned = [t for t in trials if "pruned" in t.data.tags]
    assert pruned and all(t.info.status == "KILLED" for t in pruned)
    assert "Error executing job" not in done.stderr  # a pruned trial is not a failed job


@pytest.mark.parametrize(("overrides", "key"), [
    (["hydra.sweeper.strategy=nope", "hydra.sweeper.params.act=choice(relu, tanh)"], "hydra.sweeper.strategy"),
    (["hydra.sweeper.params.depth=choice(1, 2)"], "hydra.sweeper.params"),  # not a key of the app's config
    (["hydra.sweeper.importance=anova", "hydra.sweeper.params.act=choice(relu, tanh)"], "hydra.sweeper.importance"),
    # a typo inside a sweep: tests/test_sweeper_space.py
])
def test_a_bad_sweeper_setting_is_one_line_naming_it_and_nothing_is_tracked(tiny_app, tmp_path, overrides, key):
    store = f"sqlite:///{tmp_path / 'untouched.db'}"
    done = sweep(tiny_app, store, *overrides)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), done.stderr
    assert not (tmp_path / "untouched.db").exists()


def test_ctrl_c_marks_the_running_trial_interrupted_and_a_re_run_finishes_the_study(tiny_app, store, study_name):
    args = ("hydra.sweeper.n_trials=2", f"hydra.sweeper.study={study_name}", "hydra.sweeper.metric=loss",
            "hydra.sweeper.params.act=choice(relu, tanh)", "sleep=1.5")
    process = sweep(tiny_app, store, *args, wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not trial_running(store, study_name):
        time.sleep(0.1)
    time.sleep(0.3)  # inside trial 0's epoch
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "interrupted: re-run the same command" in process.stderr.read()
    _, trials = study_runs(store, study_name)
    assert [t.data.tags.get("interrupted") for t in trials] == ["true"]

    again = sweep(tiny_app, store, *args)  # the same command
    assert again.returncode == 0, again.stderr
    _, trials = study_runs(store, study_name)
    finished = sorted(int(t.data.tags["trial"]) for t in trials if t.info.status == "FINISHED")
    assert finished == [0, 1]


def test_the_sweeper_runs_enqueued_configurations_first_and_warm_starts_from_a_study(tiny_app, store, study_name):
    choices = ["hydra.sweeper.params.act=choice(relu, tanh, sigmoid)", "hydra.sweeper.params.width=8,16",
               "hydra.sweeper.metric=loss"]
    first = sweep(tiny_app, store, "hydra.sweeper.strategy=random", "hydra.sweeper.n_trials=3",
                  f"hydra.sweeper.study={study_name}", "hydra.sweeper.enqueue=[{act: sigmoid, width: 16}]", *choices)
    assert first.returncode == 0, first.stderr
    _, trials = study_runs(store, study_name)
    enqueued = next(t for t in trials if t.data.tags["trial"] == "0")
    assert enqueued.data.params == {"act": "sigmoid", "width": "16"} and len(trials) == 3
    second = sweep(tiny_app, store, "hydra.sweeper.strategy=optuna_tpe", "hydra.sweeper.n_trials=2",
                   f"hydra.sweeper.study={study_name}-warm", f"hydra.sweeper.warm_start={study_name}", *choices)
    assert second.returncode == 0, second.stderr
    parent, trials = study_runs(store, f"{study_name}-warm")
    assert parent.data.tags["warm_start_trials"] == "3" and len(trials) == 2
