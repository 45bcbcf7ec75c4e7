"""The command line as a user meets it: end to end, bad configs, missing data, a kill and a resume."""

import json
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, TINY, children, cli, interruptible, runs

pytestmark = pytest.mark.usefixtures("mnist_available")


def test_end_to_end_one_parent_n_children_with_metrics(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = tmp_path / "summary.json"
    args = [*TINY, "strategy=grid", "strategy.points=2", "n_trials=3", f"tracking.uri={uri}",
            f"summary={summary}"]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    parents = runs(uri, "tags.study = 'grid-mnist-cnn_mnist'")
    assert len(parents) == 1
    parent = parents[0]
    assert {k: parent.data.tags[k] for k in ("strategy", "dataset", "model", "direction")} == {
        "strategy": "grid", "dataset": "mnist", "model": "cnn_mnist", "direction": "maximize"}
    assert parent.data.params["dataset.subset"] == "200"
    assert "config.yaml" in [a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id)]
    kids = children(uri, parent.info.run_id)
    assert len(kids) == 3
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert {"train_loss", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity", "val_mcc",
                "objective", "duration_s"} <= set(kid.data.metrics)
        assert kid.data.metrics["objective"] == kid.data.metrics["val_accuracy"]
        assert kid.data.tags["device"] == "cpu"
        assert set(kid.data.params) == {"trainer.lr", "trainer.momentum", "model.dropout"}
    best = max(kids, key=lambda r: r.data.metrics["objective"])
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert json.loads(summary.read_text())["best_run_id"] == best.info.run_id

    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert len(children(uri, parent.info.run_id)) == 3
    assert len(runs(uri, "tags.study = 'grid-mnist-cnn_mnist'")) == 1


def test_bad_config_is_one_line_naming_the_key_exit_2_nothing_tracked(tmp_path):
    """The README's example as a user meets it; tests/test_study_config.py checks every bad value in-process."""
    store = tmp_path / "mlflow.db"
    done = cli(*TINY, f"tracking.uri=sqlite:///{store}", "space.trainer.lr.low=0.9")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["error: space.trainer.lr.low: low (0.9) must not exceed high (0.3)"]
    assert not store.exists()


def test_missing_data_says_how_to_get_it_and_tracks_nothing(tmp_path):
    store = tmp_path / "mlflow.db"
    done = cli(*TINY, f"tracking.uri=sqlite:///{store}", f"paths.data={tmp_path / 'empty'}",
               f"paths.cache={tmp_path / 'cache'}")
    assert done.returncode == 1
    assert "dvc pull" in done.stderr and "dataset.download=true" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not store.exists()


def test_cfg_job_prints_the_composed_config():
    done = cli("--cfg", "job", "strategy=grid")
    assert done.returncode == 0
    for line in ("name: grid", "n_trials:", "device: auto", "uri: sqlite:///", "subset:", "epochs:"):
        assert line in done.stdout


def start_and_stop_mid_trial(uri: str, args: list[str], sig: signal.Signals) -> subprocess.Popen:
    """Start the CLI and send ``sig`` while a trial runs after two have finished.

    Polling a loaded machine can see that moment late, so callers leave many trials after it: the
    signal must land before the study ends.
    """
    runs(uri)  # create the store first, so polling it below never races the CLI's schema set-up
    process = subprocess.Popen([sys.executable, "-m", "src.tune", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 180
    while time.time() < deadline:
        states = [r.info.status for r in runs(uri, "tags.trial != ''")]
        if states.count("FINISHED") >= 2 and "RUNNING" in states:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the study never got two trials in")
    process.send_signal(sig)
    process.wait(timeout=60)
    return process


def test_killed_cli_study_resumes_and_runs_every_trial_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "dataset.subset=1500", "trainer.epochs=3", "n_trials=20", f"tracking.uri={uri}", "study=killed"]
    start_and_stop_mid_trial(uri, args, signal.SIGKILL)

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    kids = runs(uri, "tags.trial != ''")
    finished = sorted(int(r.data.tags["trial"]) for r in kids if r.info.status == "FINISHED")
    assert finished == list(range(20))
    interrupted = [r for r in kids if r.data.tags.get("interrupted") == "true"]
    assert len(interrupted) == 1 and interrupted[0].info.status == "FAILED"
    number = interrupted[0].data.tags["trial"]
    retry = next(r for r in kids if r.info.status == "FINISHED" and r.data.tags["trial"] == number)
    assert retry.data.params == interrupted[0].data.params


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_mark_the_trial_interrupted_and_the_study_killed(tmp_path, sig, code, word):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "dataset.subset=1500", "trainer.epochs=3", "n_trials=100", f"tracking.uri={uri}", "study=stopped"]
    process = start_and_stop_mid_trial(uri, args, sig)
    assert process.returncode == code
    lines = process.stderr.read().strip().splitlines()
    assert lines[-1].startswith(word) and "re-run" in lines[-1]
    parent = runs(uri, "tags.study = 'stopped'")[0]
    assert parent.info.status == "KILLED"
    kids = children(uri, parent.info.run_id)
    assert [r.data.tags.get("interrupted") for r in kids if r.info.status != "FINISHED"] == ["true"]
