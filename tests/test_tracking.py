"""Tracking details a user relies on: the server path, incremental reads, dead-process detection."""

import collections
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psutil
import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import optimize, server
from hpo_tune.space import SearchSpace
from hpo_tune.tracking import Tracker, TrialRecorder, default_artifact_location
from hpo_tune.tracking.record import REFRESH_MARGIN_MS
from hpo_tune.trial import Direction, Proposal, Trial, TrialState, best_trial
from tests.conftest import children, runs

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
    time.sleep(REFRESH_MARGIN_MS / 1000 + 0.1)  # runs newer than the refresh margin are read once more, by design
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
    record.history()
    record.start_trial(1, Proposal({"x": 0.5}), "cpu")  # running, and alive: this process
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = record.start_trial(2, Proposal({"x": 0.25}), "cpu")
    MlflowClient(store).set_tag(orphan, "pid", gone.stdout.strip())
    assert record.reap() == 1
    assert MlflowClient(store).get_run(orphan).data.tags["interrupted"] == "true"
    states = {t.number: t.state for t in record.history()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.RUNNING}  # the orphan is out of the history
    assert record.retries()[2] == Proposal({"x": 0.25})  # and its retry runs what it ran
    dead = MlflowClient(store).get_run(orphan).data  # it died before its first write: settling it wrote them
    assert dead.params == {"x": "0.25"} and dead.tags["claimed"] == "true"


def test_trials_of_another_host_are_dead_once_their_heartbeat_is_stale(store, study_name):
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    record = Tracker(store).load_study("hpo", study_name, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    record.stale_after_s = 30
    record.history()
    client = MlflowClient(store)
    fresh, stale = (record.start_trial(k, Proposal({"x": 0.5}), "cpu") for k in (1, 2))
    for run_id, age_s in ((fresh, 5), (stale, 31)):  # owned by a process on a host this one cannot check
        client.set_tag(run_id, "host", "elsewhere")
        client.set_tag(run_id, "heartbeat", str(int((time.time() - age_s) * 1000)))
    assert record.reap() == 1
    assert client.get_run(stale).data.tags["interrupted"] == "true"
    assert client.get_run(fresh).info.status == "RUNNING"


def test_a_reap_reads_the_trials_it_knew_running_that_ended_since_in_one_search(store, study_name, monkeypatch):
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    space = SearchSpace.from_config(SPACE)
    rival = Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE)
    rival.history()
    ended, deleted, running = (rival.start_trial(k, Proposal({"x": 0.1 * k}), "cpu") for k in (1, 2, 3))
    record = Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE)
    record.history()
    assert record.running_elsewhere(()) == 3
    TrialRecorder(rival.sink, ended, {"x": 0.1}).complete(0.01, 0.1)  # in the other process, unseen by this one
    MlflowClient(store).delete_run(deleted)
    searches, gets = [], []
    search, get = record.client.search_runs, record.client.get_run
    monkeypatch.setattr(record.client, "search_runs", lambda *a, **k: searches.append(a[1]) or search(*a, **k))
    monkeypatch.setattr(record.client, "get_run", lambda *a, **k: gets.append(a) or get(*a, **k))
    assert record.reap() == 0
    assert record.running_elsewhere(()) == 1  # only the trial that still runs
    assert {t.number: t.state for t in record.trials()} == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE,
                                                            3: TrialState.RUNNING}
    assert len(searches) == 2 and gets == []  # the running ones, then the two stale ones together


@pytest.mark.parametrize("where", ["store", "tracking_server"])  # the server's claims take its trial routes
def test_one_claim_wins_each_trial_number(where, study_name, request):
    store = request.getfixturevalue(where)
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    space = SearchSpace.from_config(SPACE)
    first, second = (Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE) for _ in range(2))
    for record in (first, second):
        record.history()  # both see number 1 free
    assert first.start_trial(1, Proposal({"x": 0.5}), "cpu") is not None
    assert second.start_trial(1, Proposal({"x": 0.75}), "cpu") is None  # the loser deletes its run
    assert 1 in second.taken()
    kids = [r for r in children(store, first.run_id) if r.data.tags["trial"] == "1"]
    assert len(kids) == 1 and kids[0].data.tags["proposed"] == '{"x": "0.5"}'


@pytest.mark.parametrize("writes", ["sql", "mlflow"])
def test_a_running_trial_of_another_process_is_taken_before_its_first_write(writes, store, study_name, monkeypatch):
    if writes == "mlflow":  # a store the one-transaction writes do not serve (a plain `mlflow server`, MySQL)
        from hpo_tune.tracking import writes as ways

        monkeypatch.setattr(ways, "store_writes", ways.StoreWrites)
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    space = SearchSpace.from_config(SPACE)
    first, second = (Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE) for _ in range(2))
    first.history()
    run_id = first.start_trial(1, Proposal({"x": 0.5}), "cpu")
    run = MlflowClient(store).get_run(run_id)
    assert run.data.params == {}
    # one SQL transaction marks a won claim on its run; MLflow's calls leave that to the first write after it
    assert run.data.tags.get("claimed") == ("true" if writes == "sql" else None)
    ledger_reads = []
    get_run = second.client.get_run
    monkeypatch.setattr(second.client, "get_run", lambda run_id: ledger_reads.append(run_id) or get_run(run_id))
    running = [t for t in second.history() if t.number == 1]  # its tag, or else the ledger, says who holds it
    assert ledger_reads == ([] if writes == "sql" else [second.claims_run_id])
    assert [(t.state, t.params, t.run_id) for t in running] == [(TrialState.RUNNING, {"x": 0.5}, run_id)]
    assert 1 in second.taken()
    recorder = TrialRecorder(first.sink, run_id, {"x": 0.5}, flush_s=0)
    recorder.report(1, {"val_loss": 0.5})  # its first write: the params and the claimed tag come with it
    run = MlflowClient(store).get_run(run_id)
    assert run.data.params == {"x": "0.5"} and run.data.tags["claimed"] == "true"
    assert run.data.metrics["val_loss"] == 0.5


def test_a_study_tracks_to_an_http_tracking_server(tracking_server, study_name):
    uri = tracking_server
    result = optimize(square, SPACE, n_trials=3, study=study_name, tracking_uri=uri, progress=False,
                      config_text="seed: 0\n")
    assert len(children(uri, result.parent_run_id)) == 3
    artifacts = [a.path for a in MlflowClient(uri).list_artifacts(result.parent_run_id)]
    assert artifacts == ["config.yaml"]


@pytest.fixture
def sent(monkeypatch):
    """How many HTTP requests went to each path (every MLflow client call, and the trial routes, send this way)."""
    from requests.sessions import Session

    counts = collections.Counter()
    send = Session.request

    def counted(session, method, url, *args, **kwargs):
        counts[urllib.parse.urlparse(url).path] += 1
        return send(session, method, url, *args, **kwargs)

    monkeypatch.setattr(Session, "request", counted)
    return counts


def test_the_project_s_server_takes_one_request_for_a_trial_s_start_and_one_for_its_end(tracking_server, study_name,
                                                                                        sent):
    def epochs(params, trial):
        for epoch in (1, 2):
            trial.report(epoch, {"val_loss": params["x"] / epoch})
        return params["x"] ** 2

    result = optimize(epochs, SPACE, n_trials=5, study=study_name, tracking_uri=tracking_server, progress=False)
    assert sent["/api/hpo/1/trials/start"] == sent["/api/hpo/1/trials/end"] == 5
    assert sent["/api/2.0/mlflow/runs/create"] == 2  # the parent and its claim ledger; trials took the routes
    kids = children(tracking_server, result.parent_run_id)
    assert sorted(r.data.tags["trial"] for r in kids) == ["0", "1", "2", "3", "4"]
    for run in kids:
        assert run.info.status == "FINISHED" and run.info.end_time and run.data.tags["claimed"] == "true"
        x = float(run.data.params["x"])
        assert run.data.metrics["objective"] == pytest.approx(x**2)
        assert run.data.metrics["val_loss"] == pytest.approx(x / 2)
        assert json.loads(run.data.tags["proposed"]) == run.data.params


def test_a_server_without_the_trial_routes_gets_mlflow_s_rest_calls(tracking_server, study_name, monkeypatch, sent):
    """As against a hosted MLflow or a plain ``mlflow server``: the trials are MLflow's REST calls."""
    from hpo_tune.tracking import writes

    monkeypatch.setattr(writes, "_trial_routes", lambda uri: None)

    def epochs(params, trial):
        trial.report(1, {"val_loss": params["x"]})
        return params["x"] ** 2

    result = optimize(epochs, SPACE, n_trials=3, study=study_name, tracking_uri=tracking_server, progress=False)
    assert not [path for path in sent if path.startswith("/api/hpo/")]
    assert sent["/api/2.0/mlflow/runs/create"] == 2 + 3  # the parent, the ledger and a run per trial
    for run in children(tracking_server, result.parent_run_id):
        assert run.info.status == "FINISHED" and run.data.tags["claimed"] == "true"
        assert run.data.metrics["objective"] == pytest.approx(float(run.data.params["x"]) ** 2)


@pytest.mark.parametrize("path", ["/api/hpo/1/version", "/api/2.0/mlflow/experiments/search?max_results=1"])
def test_the_project_s_routes_keep_mlflow_s_guard_against_foreign_hosts(tracking_server, path):
    """The routes are served beside MLflow's middlewares, not behind them: its host check must still hold."""
    for host, status in (("127.0.0.1", 200), ("attacker.example.com", 403)):
        request = urllib.request.Request(f"{tracking_server}{path}", headers={"Host": host})
        try:
            code = urllib.request.urlopen(request, timeout=30).status
        except urllib.error.HTTPError as error:
            code = error.code
        assert code == status, host


def test_the_project_s_server_runs_without_mlflow_s_job_runner_unless_asked(tmp_path, monkeypatch):
    """The runner's polling processes slowed every request ten-fold on a small machine."""
    monkeypatch.delenv(server.JOBS_SWITCH, raising=False)
    assert server.server_env("sqlite:///x.db", "art")[server.JOBS_SWITCH] == "false"
    assert server.server_env("sqlite:///x.db", "art", jobs=True)[server.JOBS_SWITCH] == "true"
    with server.local_server(tmp_path) as uri:
        assert urllib.request.urlopen(f"{uri}/health", timeout=5).status == 200
        assert not [p for p in psutil.Process().children(recursive=True) if "huey" in " ".join(p.cmdline())]
    monkeypatch.setenv(server.JOBS_SWITCH, "true")  # the user's own setting wins
    assert server.server_env("sqlite:///x.db", "art")[server.JOBS_SWITCH] == "true"


def test_epoch_metrics_are_buffered_then_written_on_time_and_at_the_end(store, study_name):
    optimize(square, SPACE, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    record = Tracker(store).load_study("hpo", study_name, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    record.history()
    client = MlflowClient(store)
    patient = TrialRecorder(record.sink, record.start_trial(1, Proposal({"x": 0.5}), "cpu"), {"x": 0.5}, flush_s=3600)
    for epoch in (1, 2, 3):
        patient.report(epoch, {"val_loss": 1.0 / epoch})
    assert client.get_metric_history(patient.run_id, "val_loss") == []
    patient.complete(0.25, 0.1)
    assert [m.step for m in client.get_metric_history(patient.run_id, "val_loss")] == [1, 2, 3]
    eager = TrialRecorder(record.sink, record.start_trial(2, Proposal({"x": 0.25}), "cpu"), {"x": 0.25}, flush_s=0)
    eager.report(1, {"val_loss": 0.5})
    assert [m.value for m in client.get_metric_history(eager.run_id, "val_loss")] == [0.5]


def test_batches_keep_within_mlflow_s_limits_and_write_everything_once():
    from mlflow.entities import Metric, Param, RunTag

    from hpo_tune.tracking.common import batches

    metrics = [Metric(f"m{k}", 0.0, 0, 0) for k in range(1500)]
    params, tags = [Param(f"p{k}", "1") for k in range(150)], [RunTag(f"t{k}", "1") for k in range(5)]
    calls = list(batches(metrics, params, tags))
    assert all(len(p) <= 100 and len(t) <= 100 and len(m) + len(p) + len(t) <= 1000 for m, p, t in calls)
    assert [sum(len(call[i]) for call in calls) for i in range(3)] == [1500, 150, 5]
    assert len(calls) == 2 and list(batches()) == [([], [], [])]  # one call when nothing is left to write


def test_parameters_too_long_for_a_tag_are_logged_when_the_trial_starts(store, study_name):
    space = {"a": {"type": "choice", "values": ["a" * 5000]}, "b": {"type": "choice", "values": ["b" * 5000]}}
    optimize(lambda p: 1.0, space, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    record = Tracker(store).load_study("hpo", study_name, SearchSpace.from_config(space), Direction.MINIMIZE)
    record.history()
    run_id = record.start_trial(1, Proposal({"a": "a" * 5000, "b": "b" * 5000}), "cpu")
    run = MlflowClient(store).get_run(run_id)
    assert "proposed" not in run.data.tags and run.data.params == {"a": "a" * 5000, "b": "b" * 5000}
    assert {t.number for t in record.history(full=True)} == {0, 1}


def test_the_record_s_views_kept_number_by_number_equal_a_fresh_read(store, study_name):
    def sometimes_failing(params):
        if params["x"] > 0.8:
            raise ValueError("too far")
        return params["x"] ** 2

    optimize(sometimes_failing, SPACE, n_trials=12, study=study_name, tracking_uri=store, progress=False)
    space = SearchSpace.from_config(SPACE)
    record = Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE)
    record.history()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = record.start_trial(12, Proposal({"x": 0.3}), "cpu")
    MlflowClient(store).set_tag(orphan, "pid", gone.stdout.strip())
    running = record.start_trial(13, Proposal({"x": 0.01}), "cpu")
    record.reap([running])  # the orphan's number is free again, with its proposal to retry
    TrialRecorder(record.sink, running, {"x": 0.01}).complete(0.0001, 0.1)
    record.note(Trial(13, {"x": 0.01}, TrialState.COMPLETE, 0.0001, running))
    fresh = Tracker(store).load_study("hpo", study_name, space, Direction.MINIMIZE)
    fresh.history()
    assert TrialState.FAILED in {t.state for t in fresh.trials()}  # the views went through failures too
    for seen in (record, fresh):
        assert [(t.number, t.state, t.value) for t in seen.trials()] == [
            (t.number, t.state, t.value) for t in fresh.trials()]
        assert seen.taken() == frozenset(range(12)) | {13} and seen.retries() == {12: Proposal({"x": 0.3})}
        assert seen.best() == best_trial(seen.trials(), Direction.MINIMIZE) and seen.best().number == 13
        assert seen.ended() == 13 and not seen.running_elsewhere(())


def test_the_study_s_experiment_shows_only_its_parent_and_trials(store, study_name):
    result = optimize(square, SPACE, n_trials=5, study=study_name, tracking_uri=store, experiment=study_name,
                      progress=False)
    client = MlflowClient(store)
    found = client.search_runs([client.get_experiment_by_name(study_name).experiment_id])  # what the UI lists
    kids = [r for r in found if r.info.run_id != result.parent_run_id]
    assert len(kids) == 5 and len(children(store, result.parent_run_id)) == 5
    columns = {key for run in kids for key in run.data.params} | set(
        client.get_run(result.parent_run_id).data.params)
    assert not any(key[0].isdigit() for key in columns)  # no claim became a parameter column of the experiment
    ledger = client.get_experiment_by_name(f"{study_name} (hpo ledger)")
    (claims,) = client.search_runs([ledger.experiment_id], f"tags.parent = '{result.parent_run_id}'")
    assert sorted(claims.data.params.values()) == sorted(r.info.run_id for r in kids)


def test_a_study_made_with_its_ledger_as_a_child_still_resumes_on_it(store, study_name, monkeypatch):
    from hpo_tune.tracking.study_runs import StudyRuns

    def child_ledger(self, experiment_id, parent, name):  # how studies were laid out before the companion
        run = self.client.create_run(experiment_id, run_name="claims", tags={
            "mlflow.parentRunId": parent, "mlflow.runName": "claims", "hpo.role": "claims"})
        return run.info.run_id

    with monkeypatch.context() as patched:
        patched.setattr(StudyRuns, "_create_ledger", child_ledger)
        first = optimize(square, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False)
    kids = runs(store, f"tags.`mlflow.parentRunId` = '{first.parent_run_id}'")
    assert len(kids) == 4  # the old layout: three trials and the ledger
    again = optimize(square, SPACE, n_trials=5, study=study_name, tracking_uri=store, progress=False)
    assert again.parent_run_id == first.parent_run_id
    assert [t.number for t in again.trials] == list(range(5))
    (ledger,) = [r for r in runs(store, f"tags.`mlflow.parentRunId` = '{first.parent_run_id}'")
                 if "trial" not in r.data.tags]
    assert len(ledger.data.params) == 5  # the new trials claimed their numbers on the old ledger
