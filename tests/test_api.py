"""The Python API on plain functions: tracking, failures, resume, kill."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import current_trial, optimize
from hpo_tune.errors import ConfigError, StudyConflictError
from hpo_tune.strategies import STRATEGIES
from hpo_tune.strategies.random import RandomSearch
from hpo_tune.trial import TrialState
from tests.conftest import IMPORT_PATH, children

SPACE = {"x": {"type": "float", "low": -4.0, "high": 4.0}, "k": {"type": "choice", "values": [1, 2, 3]}}


def quadratic(params):
    return (params["x"] - 1.0) ** 2 + params["k"]


def test_plain_function_is_tuned_and_tracked(store, study_name):
    result = optimize(quadratic, SPACE, "random", n_trials=12, study=study_name, tracking_uri=store, seed=3,
                      progress=False)
    assert len(result.trials) == 12
    assert result.best.value == min(t.value for t in result.trials)
    kids = children(store, result.parent_run_id)
    assert sorted(int(r.data.tags["trial"]) for r in kids) == list(range(12))
    assert all(r.info.status == "FINISHED" and "objective" in r.data.metrics for r in kids)
    parent = MlflowClient(store).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["study"] == study_name and parent.data.tags["strategy"] == "random"
    assert parent.data.tags["direction"] == "minimize"
    assert parent.data.metrics["best_objective"] == result.best.value
    assert parent.data.tags["best_run_id"] == result.best.run_id
    assert parent.data.tags["best.k"] == str(result.best.params["k"])


def test_code_inside_a_trial_finds_it_without_being_handed_it(store, study_name):
    seen = []

    def helper_deep_inside(x):
        trial = current_trial()
        seen.append((trial.number, trial.run_id))
        return x * x

    result = optimize(lambda params: helper_deep_inside(params["x"]), SPACE, n_trials=3, study=study_name,
                      tracking_uri=store, progress=False)
    assert seen == [(t.number, t.run_id) for t in result.trials]
    assert current_trial() is None  # outside a study


def test_reported_epochs_become_metric_histories(store, study_name):
    def curve(params, trial):
        for epoch in range(1, 4):
            trial.report(epoch, {"val_loss": params["x"] / epoch})
        return {"val_loss": params["x"] / 3}

    result = optimize(curve, SPACE, n_trials=2, metric="val_loss", study=study_name, tracking_uri=store,
                      progress=False)
    history = MlflowClient(store).get_metric_history(result.trials[0].run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert history[-1].value == pytest.approx(result.trials[0].value)


def test_failing_and_nan_trials_are_recorded_and_the_study_goes_on(store, study_name):
    def flaky(params, trial):
        if trial.number == 1:
            raise RuntimeError("out of memory")
        if trial.number == 2:
            return math.nan
        return quadratic(params)

    result = optimize(flaky, SPACE, n_trials=4, study=study_name, tracking_uri=store, progress=False)
    states = {t.number: t.state for t in result.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAILED, 2: TrialState.FAILED, 3: TrialState.COMPLETE}
    errors = {int(r.data.tags["trial"]): r.data.tags.get("error", "") for r in children(store, result.parent_run_id)}
    assert errors[1] == "RuntimeError: out of memory"
    assert "nan" in errors[2]
    parent = MlflowClient(store).get_run(result.parent_run_id)
    assert parent.data.metrics["n_failed"] == 2 and parent.data.metrics["n_complete"] == 2


def test_rerun_adds_nothing_and_a_larger_budget_adds_only_the_missing_trials(store, study_name):
    calls = []

    def counted(params):
        calls.append(params)
        return quadratic(params)

    kwargs = dict(study=study_name, tracking_uri=store, progress=False, seed=1)
    first = optimize(counted, SPACE, n_trials=3, **kwargs)
    again = optimize(counted, SPACE, n_trials=3, **kwargs)
    assert len(calls) == 3 and again.parent_run_id == first.parent_run_id
    more = optimize(counted, SPACE, n_trials=5, **kwargs)
    assert len(calls) == 5
    assert [t.number for t in more.trials] == [0, 1, 2, 3, 4]
    assert len(children(store, first.parent_run_id)) == 5
    reference = optimize(quadratic, SPACE, n_trials=5, study=f"{study_name}-ref", tracking_uri=store,
                         progress=False, seed=1)
    assert [t.params for t in more.trials] == [t.params for t in reference.trials]


def test_a_changed_config_is_not_mixed_into_an_existing_study(store, study_name):
    optimize(quadratic, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    narrowed = {**SPACE, "x": {"type": "float", "low": 0.0, "high": 4.0}}
    with pytest.raises(StudyConflictError, match=r"space.x.low \(-4.0 -> 0.0\)"):
        optimize(quadratic, narrowed, n_trials=1, study=study_name, tracking_uri=store, progress=False)


def test_bad_arguments_fail_before_tracking(tmp_path):
    uri = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(ConfigError, match="n_trials"):
        optimize(quadratic, SPACE, n_trials=0, tracking_uri=uri)
    with pytest.raises(ConfigError, match="n_trials"):
        optimize(quadratic, SPACE, "random", n_trials=None, tracking_uri=uri)
    with pytest.raises(ConfigError, match="direction"):
        optimize(quadratic, SPACE, n_trials=1, direction="down", tracking_uri=uri)
    assert not (tmp_path / "never.db").exists()


def test_grid_without_budget_runs_the_whole_grid(store, study_name):
    space = {"k": {"type": "choice", "values": [1, 2, 3]}, "x": {"type": "float", "low": 0.0, "high": 2.0}}
    result = optimize(quadratic, space, "grid", strategy_options={"points": 3}, study=study_name,
                      tracking_uri=store, progress=False)
    assert len(result.trials) == 9
    assert result.best.params == {"k": 1, "x": 1.0}


SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hpo_tune import current_trial, optimize

    marker = Path(sys.argv[3])

    def objective(params, trial):
        if trial.number == 2 and not marker.exists():
            marker.write_text(str(params))
            time.sleep(120)  # killed here
        return (params["x"] - 1.0) ** 2 + params["k"]

    space = {"x": {"type": "float", "low": -4.0, "high": 4.0}, "k": {"type": "choice", "values": [1, 2, 3]}}
    optimize(objective, space, n_trials=5, seed=11, study=sys.argv[2], tracking_uri=sys.argv[1], progress=False)
""")


def test_a_study_killed_mid_trial_resumes_with_every_trial_once(store, study_name, tmp_path):
    script = tmp_path / "study.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "started"
    command = [sys.executable, str(script), store, study_name, str(marker)]
    env = {**os.environ, "PYTHONPATH": IMPORT_PATH}
    process = subprocess.Popen(command, env=env)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the study never reached trial 2"
    process.send_signal(signal.SIGKILL)
    process.wait()

    subprocess.run(command, env=env, check=True, timeout=120)
    subprocess.run([*command[:2], store, f"{study_name}-uninterrupted", str(marker)], env=env, check=True,
                   timeout=120)

    parent = MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments()], f"tags.study = '{study_name}'")[0]
    kids = children(store, parent.info.run_id)
    dead = [r for r in kids if r.data.tags.get("interrupted") == "true"]
    finished = [r for r in kids if r.info.status == "FINISHED"]
    assert len(dead) == 1 and dead[0].data.tags["trial"] == "2" and dead[0].info.status == "FAILED"
    assert sorted(int(r.data.tags["trial"]) for r in finished) == [0, 1, 2, 3, 4]
    retried = next(r for r in finished if r.data.tags["trial"] == "2")
    assert retried.data.params == dead[0].data.params

    reference = MlflowClient(store).search_runs(
        [parent.info.experiment_id], f"tags.study = '{study_name}-uninterrupted'")[0]
    expected = {r.data.tags["trial"]: (r.data.params, r.data.metrics["objective"])
                for r in children(store, reference.info.run_id)}
    assert {r.data.tags["trial"]: (r.data.params, r.data.metrics["objective"]) for r in finished} == expected


def test_strategy_tables_and_plots_land_on_the_parent(store, study_name, monkeypatch, tmp_path):
    class Explained(RandomSearch):
        name = "explained"

        def artifacts(self, history):
            return {"table.csv": f"finished\n{sum(t.finished for t in history)}\n", "plots/curve.png": b"\x89PNG"}

    monkeypatch.setitem(STRATEGIES, "explained", Explained)
    result = optimize(quadratic, SPACE, "explained", n_trials=3, study=study_name, tracking_uri=store,
                      progress=False)
    client = MlflowClient(store)
    assert sorted(a.path for a in client.list_artifacts(result.parent_run_id)) == ["plots", "table.csv"]
    table = client.download_artifacts(result.parent_run_id, "table.csv", str(tmp_path))
    assert open(table).read() == "finished\n3\n"
    assert [a.path for a in client.list_artifacts(result.parent_run_id, "plots")] == ["plots/curve.png"]


def test_fresh_starts_the_study_anew(store, study_name):
    first = optimize(quadratic, SPACE, n_trials=2, study=study_name, tracking_uri=store, progress=False)
    again = optimize(quadratic, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False, fresh=True)
    assert again.parent_run_id != first.parent_run_id and len(again.trials) == 3
    assert MlflowClient(store).get_run(first.parent_run_id).info.lifecycle_stage == "deleted"
    assert len(children(store, again.parent_run_id)) == 3


def test_the_progress_bar_counts_to_what_the_strategy_will_run(store, study_name, capsys):
    options = {"n_initial": 2, "n_iterations": 3}
    optimize(quadratic, {"x": SPACE["x"]}, "gp_bo", n_trials=20, strategy_options=options, study=study_name,
             tracking_uri=store)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "5/5" in bar and "100%" in bar, bar


@pytest.mark.parametrize("strategy", ["gp_bo", "gamma_bo"])
def test_the_bos_use_the_whole_budget_unless_their_options_stop_them_sooner_and_then_say_so(
        store, study_name, strategy, caplog):
    result = optimize(quadratic, {"x": SPACE["x"]}, strategy, n_trials=14, study=study_name, tracking_uri=store,
                      progress=False)
    assert len(result.trials) == 14 and not caplog.records
    capped = optimize(quadratic, {"x": SPACE["x"]}, strategy, n_trials=14, strategy_options={"n_iterations": 3},
                      study=f"{study_name}-capped", tracking_uri=store, progress=False)
    assert len(capped.trials) == 5
    assert [r.getMessage() for r in caplog.records] == [
        f"strategy {strategy!r} finishes after 5 trials, fewer than n_trials=14: its own options say so (the BOs: "
        "n_initial + n_iterations; a grid: its points)"]


def test_a_budget_the_strategy_cannot_use_is_refused_before_tracking(tmp_path):
    space = {name: {"type": "float", "low": 0.0, "high": 1.0} for name in ("a", "b", "c")}
    with pytest.raises(ConfigError, match="n_trials.*8"):
        optimize(quadratic, space, "factorial_grid", n_trials=6, tracking_uri=f"sqlite:///{tmp_path / 'never.db'}")
    assert not (tmp_path / "never.db").exists()


def test_every_registered_strategy_is_found_under_its_name():
    from hpo_tune.strategies import strategy_class

    assert {name: strategy_class(name).name for name in STRATEGIES} == {name: name for name in STRATEGIES}
