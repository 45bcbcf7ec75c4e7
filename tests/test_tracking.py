"""Tracking details a user relies on: the server path, incremental reads, dead-process detection."""

import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from src import optimize
from src.space import SearchSpace
from src.tracking import Tracker, TrialRecorder, default_artifact_location
from src.trial import Direction, Proposal, TrialState
from tests.conftest import children

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def square(params):
    return params["x"] ** 2


def test_local_store_keeps_artifacts_beside_the_database(tmp_path):
    assert default_artifact_location(f"sqlite:///{tmp_path}/mlflow.db") == str(tmp_path / "mlruns")
    assert default_artifact_location("http://127.0.0.1:5000") is None


def test_history_reads_only_what_changed(store, study_name, monkeypatch):
    optimize(square, SPACE, n_trials=30, study=study_name, tracking_uri=store, progress=False)
    tracker = Tracker(store)
    record = tracker.load_study("hpo", study_name, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    time.sleep(0.5)  # runs newer than the refresh margin are read once more, by design
    assert len(record.history()) == 30
    read = []
    search = record.client.search_runs
    monkeypatch.setattr(record.client, "search_runs",
                        lambda *a, **k: read.extend(page := search(*a, **k)) or page)
    assert len(record.history()) == 30
    assert read == []
    optimize(square, SPACE, n_trials=31, study=study_name, tracking_uri=store, progress=False)
    history = record.history()
    assert [t.number for t in history] == list(range(31))
    assert {r.data.tags["trial"] for r in read} == {"30"}


def test_running_trials_of_dead_processes_are_marked_interrupted(store, study_name):
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    tracker = Tracker(store)
    record = tracker.load_study("hpo", study_name, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    TrialRecorder(record.sink, 1, Proposal({"x": 0.5}), "cpu")  # running, and alive: this process
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = TrialRecorder(record.sink, 2, Proposal({"x": 0.25}), "cpu")
    MlflowClient(store).set_tag(orphan.run_id, "pid", gone.stdout.strip())
    assert record.reap_dead_trials() == 1
    assert MlflowClient(store).get_run(orphan.run_id).data.tags["interrupted"] == "true"
    states = {t.number: t.state for t in record.history()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.RUNNING}  # the orphan is out of the history


def test_a_study_tracks_to_an_http_tracking_server(tracking_server, study_name):
    uri = tracking_server
    result = optimize(square, SPACE, n_trials=3, study=study_name, tracking_uri=uri, progress=False,
                      config_text="seed: 0\n")
    assert len(children(uri, result.parent_run_id)) == 3
    artifacts = [a.path for a in MlflowClient(uri).list_artifacts(result.parent_run_id)]
    assert artifacts == ["config.yaml"]


def test_epoch_metrics_are_buffered_then_written_on_time_and_at_the_end(store, study_name):
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    record = Tracker(store).load_study("hpo", study_name, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    client = MlflowClient(store)
    patient = TrialRecorder(record.sink, 1, Proposal({"x": 0.5}), "cpu", flush_s=3600)
    for epoch in (1, 2, 3):
        patient.report(epoch, {"val_loss": 1.0 / epoch})
    assert client.get_metric_history(patient.run_id, "val_loss") == []
    patient.complete(0.25, 0.1)
    assert [m.step for m in client.get_metric_history(patient.run_id, "val_loss")] == [1, 2, 3]
    eager = TrialRecorder(record.sink, 2, Proposal({"x": 0.25}), "cpu", flush_s=0)
    eager.report(1, {"val_loss": 0.5})
    assert [m.value for m in client.get_metric_history(eager.run_id, "val_loss")] == [0.5]
