"""ASHA and Hyperband on MLflow: rungs and pauses on the trial runs, a kill while trials are paused, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.execution import ProcessExecutor
from hpo_tune.pruning import Pruner
from hpo_tune.trial import TrialState
from tests.conftest import IMPORT_PATH, TINY, children, cli, runs

SCRIPT = textwrap.dedent("""
    import math, os, signal, sys, time
    from pathlib import Path
    from hpo_tune import optimize

    uri, study, log, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])

    def objective(params, trial):
        saved = trial.restore()
        start = 1 if saved is None else saved.state["epoch"] + 1
        with log.open("a") as file:
            file.write(f"{study} {trial.number} {start}\\n")
        if trial.number == 7 and start == 1 and not marker.exists():
            marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)  # trials 0-6 have run: some wait at rungs
        value = 0.0
        for epoch in range(start, 10):
            value = (1 - (params["x"] - 0.3) ** 2) * (1 - math.exp(-epoch / 3))
            trial.report(epoch, {"acc": value}, checkpoint=lambda epoch=epoch: {"epoch": epoch})
        return {"acc": value}

    optimize(objective, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n_trials=12, seed=3, study=study,
             tracking_uri=uri, direction="maximize", metric="acc", progress=False,
             pruner={"name": "asha", "max_resource": 9, "mode": "promote"})
""")


def outcome(uri: str, study: str) -> dict[int, tuple]:
    """Each trial number's live run: its status, whether it is paused, its rungs and its curve's epochs."""
    parent = runs(uri, f"tags.study = '{study}'")[0]
    client = MlflowClient(uri)
    live = [r for r in children(uri, parent.info.run_id) if r.data.tags.get("interrupted") != "true"]
    assert len(live) == len({r.data.tags["trial"] for r in live})  # one live run per number
    return {int(r.data.tags["trial"]): (
        r.info.status, r.data.tags.get("state"), {k: v for k, v in r.data.tags.items() if k.startswith("rung.")},
        sorted(m.step for m in client.get_metric_history(r.info.run_id, "acc"))) for r in live}


def test_a_study_killed_while_trials_are_paused_resumes_them_from_their_checkpoints(store, study_name, tmp_path):
    script, log, marker = tmp_path / "study.py", tmp_path / "calls.log", tmp_path / "killed"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": IMPORT_PATH}
    command = [sys.executable, str(script), store, study_name, str(log), str(marker)]
    killed = subprocess.run(command, env=env, timeout=180)
    assert killed.returncode == -signal.SIGKILL and marker.exists()
    before = outcome(store, study_name)
    paused = {n for n, (status, state, _, _) in before.items() if state == "PAUSED"}
    assert paused and all(before[n][0] == "KILLED" for n in paused)

    subprocess.run(command, env=env, check=True, timeout=180)  # the same command resumes the study
    subprocess.run([*command[:3], f"{study_name}-whole", *command[4:]], env=env, check=True, timeout=180)

    calls = [line.split() for line in log.read_text().splitlines()]
    starts = Counter((int(n), int(start)) for study, n, start in calls if study == study_name)
    assert starts[7, 1] == 2  # the trial running at the kill ran again from its start
    assert all(count == 1 for key, count in starts.items() if key != (7, 1))  # nothing else ran twice
    resumed = {n for n, start in starts if start > 1}
    assert resumed & paused, "no trial paused at the kill was resumed"
    assert all(start - 1 in (1, 3) for _, start in starts if start > 1)  # from the checkpoint at its rung

    after, whole = outcome(store, study_name), outcome(store, f"{study_name}-whole")
    assert set(after) == set(range(12))
    assert after == whole  # the same decisions as a study that was never killed
    assert any(status == "FINISHED" and epochs == list(range(1, 10)) for status, _, _, epochs in after.values())
    client = MlflowClient(store)
    some = next(r for r in runs(store, f"tags.study = '{study_name}'"))
    kids = children(store, some.info.run_id)
    assert any(a.path == "checkpoints/epoch_0001.pt" for r in kids
               for a in client.list_artifacts(r.info.run_id, "checkpoints"))


def learning(params, trial):
    saved = trial.restore()
    start = 1 if saved is None else saved.epoch + 1
    value = 0.0
    for epoch in range(start, 10):
        value = (1 - (params["x"] - 0.3) ** 2) * (1 - 0.5 ** epoch)
        trial.report(epoch, {"acc": value}, checkpoint=lambda epoch=epoch: {"epoch": epoch, "pid": os.getpid()})
    return {"acc": value}


def test_hyperband_promote_mode_in_worker_processes(store, study_name):
    """The process pool reads rungs and checkpoints back from MLflow in its workers, in the brackets inline
    studies use (which trials go on depends, as in any asynchronous halving, on what was recorded when asked)."""
    pooled = optimize(learning, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n_trials=10, seed=5,
                      study=study_name, tracking_uri=store, direction="maximize", metric="acc", progress=False,
                      executor=ProcessExecutor(n_workers=2),
                      pruner={"name": "hyperband", "max_resource": 9, "mode": "promote"})
    assert len(pooled.trials) == 10 and pooled.best is not None
    halving = Pruner(name="hyperband", max_resource=9).halving
    for trial in pooled.trials:
        assert set(trial.rungs) == {r for r in halving.rungs_of(trial.number, 5) if r <= max(trial.curve)}
        assert trial.paused == (trial.state is TrialState.PRUNED)
        if trial.state is TrialState.COMPLETE:
            assert sorted(trial.curve) == list(range(1, 10))
    assert any(t.state is TrialState.COMPLETE and min(t.rungs, default=9) < 9 for t in pooled.trials)  # promoted


@pytest.mark.usefixtures("mnist_available")
def test_cli_asha_promote_on_mnist_pauses_and_promotes_with_real_checkpoints(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli(*TINY, "trainer.epochs=3", "strategy=random", "n_trials=6", "pruner=asha", "pruner.mode=promote",
               "space.trainer.lr.high=0.1", "tracking.log_models=none", f"tracking.uri={uri}")
    assert done.returncode == 0, done.stderr
    parent = runs(uri, "tags.study = 'random-mnist-cnn_mnist'")[0]
    kids = children(uri, parent.info.run_id)
    assert len(kids) == 6
    paused = [r for r in kids if r.data.tags.get("state") == "PAUSED"]
    complete = [r for r in kids if r.info.status == "FINISHED"]
    assert paused and complete
    client = MlflowClient(uri)
    for run in complete:
        assert run.data.tags["rung.1"]
        assert run.data.tags["promoted.1"].endswith(":" + run.data.tags["pid"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2, 3]
    assert all(set(a.path for a in client.list_artifacts(r.info.run_id, "checkpoints")) ==
               {"checkpoints/epoch_0001.pt"} for r in paused)
    summary = client.get_run(parent.info.run_id).data.metrics
    assert summary["n_paused"] == len(paused) and summary["n_pruned"] == len(paused)
    assert summary["epochs_spent"] == sum(len(client.get_metric_history(r.info.run_id, "val_accuracy")) for r in kids)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "pruner")} == {
        "pruner/rungs.png", "pruner/curves.png", "pruner/epochs_to_best.png", "pruner/rungs.csv"}


def test_a_resumed_run_is_running_again_and_visible_to_other_readers(store, study_name):
    """While a promoted trial trains, its run is RUNNING under the promoting process, PAUSED no more."""
    seen = {}

    def watch(params, trial):
        saved = trial.restore()
        if saved is not None:
            parent = runs(store, f"tags.study = '{study_name}'")[0]
            mine = [r for r in children(store, parent.info.run_id) if r.data.tags["trial"] == str(trial.number)]
            seen[trial.number] = (mine[0].info.status, mine[0].data.tags.get("state"), mine[0].data.tags["pid"])
        return learning(params, trial)

    optimize(watch, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n_trials=6, seed=1, study=study_name,
             tracking_uri=store, direction="maximize", metric="acc", progress=False,
             pruner={"name": "asha", "max_resource": 9, "mode": "promote"})
    assert seen and all(v == ("RUNNING", None, str(os.getpid())) for v in seen.values())


def test_stop_mode_on_mlflow_compares_with_every_value_recorded_at_the_rung(store, study_name):
    result = optimize(learning, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n_trials=9, seed=2,
                      study=study_name, tracking_uri=store, direction="maximize", metric="acc", progress=False,
                      pruner={"name": "asha", "max_resource": 9})
    kids = {int(r.data.tags["trial"]): r for r in children(store, result.parent_run_id)}
    pruned = [n for n, r in kids.items() if r.info.status == "KILLED"]
    assert pruned and all("rung 1: " in kids[n].data.tags["pruned"] or "rung 3: " in kids[n].data.tags["pruned"]
                          for n in pruned)
    assert not any(r.data.tags.get("state") for r in kids.values())  # stop mode pauses nothing
    at_one = {n: float(r.data.tags["rung.1"]) for n, r in kids.items()}
    for number in pruned:  # cut at rung 1: not among the best third of the values recorded before it, and its own
        if "rung.3" not in kids[number].data.tags:
            earlier = sorted([at_one[n] for n in at_one if n < number] + [at_one[number]], reverse=True)
            assert at_one[number] < earlier[max(1, len(earlier) // 3) - 1]
