"""Several processes on one study, and processes killed at bad moments: each trial number runs once.

The processes are real (``python -m bench.chaos worker``: ``optimize`` on trials that sleep), on a
local SQLite file and on tracking servers backed by SQLite and by PostgreSQL.
"""

import signal
import subprocess
import sys
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from bench.chaos import census, finish, kill, start
from hpo_tune.tracking import store
from tests.conftest import SLOW_SHARED_STORES, children, runs

ALL_DONE = {"lost": 0, "duplicated": 0, "running": 0, "parents": 1, "failed": 0}


def wait_for(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def trial_runs(uri: str) -> list:
    return runs(uri, "tags.trial != ''")


def test_three_processes_started_at_once_run_each_trial_once(shared_store, study_name):
    processes = [start(shared_store, study_name, 24, "--sleep", "0.1") for _ in range(3)]
    for process in processes:
        finish(process)
    counts = census(shared_store, study_name, 24)
    assert counts == {"trials": 24, **ALL_DONE}
    parent = runs(shared_store, f"tags.study = '{study_name}'")[0]
    assert parent.data.metrics["n_complete"] == 24


@SLOW_SHARED_STORES
def test_a_survivor_finishes_what_its_killed_sibling_was_running(shared_store, study_name):
    # trials long enough that the kill, sent as soon as the victim is seen mid-trial, lands inside one
    victim, survivor = (start(shared_store, study_name, 12, "--sleep", "1.5") for _ in range(2))

    def victim_mid_trial() -> bool:
        kids = [r for r in trial_runs(shared_store) if r.data.tags.get("pid") == str(victim.pid)]
        # claimed (on the ledger): a run that lost its claim to the survivor is RUNNING for a moment too
        claims = {run_id for ledger in runs(shared_store, "tags.`hpo.role` = 'claims'")
                  for run_id in ledger.data.params.values()}
        return any(r.info.status == "FINISHED" for r in kids) and any(
            r.info.status == "RUNNING" and r.info.run_id in claims for r in kids)

    wait_for(victim_mid_trial, "the victim to be mid-trial")
    kill(victim)
    finish(survivor, timeout_s=120)
    assert census(shared_store, study_name, 12) == {"trials": 12, **ALL_DONE}
    dead = [r for r in trial_runs(shared_store) if r.data.tags.get("interrupted") == "true"]
    assert dead and all(r.data.tags["pid"] == str(victim.pid) for r in dead)


def test_workers_die_with_their_driver(tmp_path, study_name):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = start(uri, study_name, 4, "--sleep", "60", "--executor", "process")
    wait_for(lambda: sum(r.info.status == "RUNNING" for r in trial_runs(uri)) == 2, "two running trials")
    workers = psutil.Process(driver.pid).children()
    assert len(workers) >= 2
    kill(driver)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []


def test_sigterm_stops_the_study_like_ctrl_c(tmp_path, study_name):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = start(uri, study_name, 4, "--sleep", "60", "--executor", "process")
    wait_for(lambda: sum(r.info.status == "RUNNING" for r in trial_runs(uri)) == 2, "two running trials")
    workers = psutil.Process(driver.pid).children()
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode != 0 and "Terminated" in err  # the API raises it; the CLI turns it into exit 143
    psutil.wait_procs(workers, timeout=10)
    kids = trial_runs(uri)
    assert sorted((r.info.status, r.data.tags.get("interrupted")) for r in kids) == [("FAILED", "true")] * 2
    assert runs(uri, f"tags.study = '{study_name}'")[0].info.status == "KILLED"


def test_killing_the_driver_does_not_spend_a_trials_retries(tmp_path, study_name):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(3):  # max_retries is 2: a third lost attempt would fail a trial whose worker died
        driver = start(uri, study_name, 2, "--sleep", "30")
        wait_for(lambda: any(r.info.status == "RUNNING" and r.data.tags["pid"] == str(driver.pid)  # noqa: B023
                             for r in trial_runs(uri)), "a running trial")
        kill(driver)
    finish(start(uri, study_name, 2, "--sleep", "0.1"))
    assert census(uri, study_name, 2) == {"trials": 2, **ALL_DONE}
    parent = runs(uri, f"tags.study = '{study_name}'")[0]
    attempts = [r for r in children(uri, parent.info.run_id) if r.data.tags["trial"] == "0"]
    assert len(attempts) == 4 and sum(r.data.tags.get("interrupted") == "true" for r in attempts) == 3
    assert not any(r.data.tags.get("worker_died") for r in attempts)


def test_a_study_started_on_a_store_half_made_by_a_killed_process_runs(tmp_path, study_name):
    """A kill while MLflow creates a SQLite store's tables leaves some of them; the next run rebuilds it."""
    from mlflow.store.db.utils import create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base

    path = tmp_path / "mlflow.db"
    engine = create_sqlalchemy_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)  # the first step of MLflow's set-up, before its migrations
    engine.dispose()
    finish(start(f"sqlite:///{path}", study_name, 3, "--sleep", "0"))
    assert census(f"sqlite:///{path}", study_name, 3) == {"trials": 3, **ALL_DONE}
    assert list(tmp_path.glob(".mlflow.db.*")) == []


def test_a_store_another_client_is_creating_in_place_is_waited_for_not_replaced(tmp_path):
    """MLflow itself (``mlflow ui``, a notebook) creates a new store in place; replacing that file would
    leave the other client writing to one no one else reads."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    other = subprocess.Popen([sys.executable, "-c", "import mlflow, sys; c = mlflow.MlflowClient(sys.argv[1]); "
                              "c.create_experiment('made-by-the-other-client')", uri])
    path = tmp_path / "mlflow.db"
    wait_for(path.exists, "the other client to start its store")
    inode = path.stat().st_ino
    client = store.connect(uri)
    assert other.wait(timeout=120) == 0
    assert path.stat().st_ino == inode
    assert client.get_experiment_by_name("made-by-the-other-client") is not None


@pytest.mark.parametrize("made_by", ["an older version", "this version"])
def test_a_parent_whose_process_died_before_recording_its_config_is_adopted(tmp_path, study_name, made_by):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    finish(start(uri, f"{study_name}-same-config", 1, "--sleep", "0"))
    client = MlflowClient(uri)
    reference = runs(uri, f"tags.study = '{study_name}-same-config'")[0]
    tags = {"study": study_name, "direction": "minimize", "metric": "objective"}
    if made_by == "this version":  # the identity comes with the run; the params and the lock never got made
        tags["identity"] = reference.data.tags["identity"]
    orphan = client.create_run(reference.info.experiment_id, run_name=study_name, tags=tags).info.run_id
    finish(start(uri, study_name, 2, "--sleep", "0"))
    assert census(uri, study_name, 2) == {"trials": 2, **ALL_DONE}
    parent = runs(uri, f"tags.study = '{study_name}'")[0]
    assert parent.info.run_id == orphan and parent.data.params == reference.data.params
