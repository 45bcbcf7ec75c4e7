"""A trial's one-transaction writes (``SqlWrites``) leave what MLflow's own calls leave, on SQLite and PostgreSQL,
refuse what MLflow refuses, and keep a start's run and claim together."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hpo_tune.tracking import sql_writes
from hpo_tune.tracking.sql_writes import SqlWrites
from hpo_tune.tracking.store import connect
from hpo_tune.tracking.writes import StoreWrites, store_writes


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> MlflowClient:
    uri = request.getfixturevalue({"sqlite": "store", "postgres": "postgres_backend"}[request.param])
    return connect(uri)


def ways(client: MlflowClient) -> dict[str, object]:
    """The one-transaction writes (made directly, whatever MLflow's schema: this is the check that they still
    match) and MLflow's own calls."""
    store = client._tracking_client.store
    return {"sql": SqlWrites(store), "mlflow": StoreWrites(store)}


def experiment(client: MlflowClient) -> tuple[str, str]:
    """A fresh experiment and a claim ledger run in it."""
    experiment_id = client.create_experiment(f"writes-{uuid.uuid4().hex[:8]}")
    return experiment_id, client.create_run(experiment_id).info.run_id


def written(client: MlflowClient, run_id: str) -> dict[str, object]:
    """What a reader sees of a run, less what differs between any two runs (ids, clock times)."""
    run = client.get_run(run_id)
    info = run.info
    histories = {key: sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, key))
                 for key in run.data.metrics}
    return {"status": info.status, "stage": info.lifecycle_stage, "user": info.user_id, "name": info.run_name,
            "artifacts": info.artifact_uri.endswith(f"/{run_id}/artifacts"), "ended": info.end_time is not None,
            "params": run.data.params, "tags": run.data.tags, "histories": histories,
            "latest": {k: repr(v) for k, v in run.data.metrics.items()}}


def test_a_trial_written_in_one_transaction_each_reads_back_as_mlflow_s_calls_write_it(database):
    assert isinstance(store_writes(database._tracking_client.store), SqlWrites)
    seen = {}
    for way, writes in ways(database).items():
        experiment_id, ledger = experiment(database)
        run_id, holder = writes.start(experiment_id, "trial-0001", {"trial": "1", "mlflow.user": "ada"}, ledger, "1.0")
        assert holder == run_id and database.get_run(ledger).data.params == {"1.0": run_id}
        writes.write(run_id, [Metric("loss", 0.5, 10, 1), Metric("loss", 0.4, 20, 2), Metric("loss", math.nan, 30, 3),
                              Metric("far", math.inf, 5, 0), Metric("loss", 0.5, 10, 1)],
                     [Param("x", "0.5")], [RunTag("claimed", "true")])
        writes.write(run_id, [Metric("loss", 0.4, 20, 2), Metric("far", 1.0, 1, 0)],  # repeated, then older
                     [Param("x", "0.5"), Param("y", "2")], [RunTag("claimed", "again"), RunTag("mlflow.runName", "t1")])
        writes.write(run_id, [Metric("objective", 0.1, 40, 0), Metric("loss", 0.2, 50, 4), Metric("tie", 1.0, 7, 0),
                              Metric("tie", 2.0, 7, 0)], status="FINISHED")
        seen[way] = written(database, run_id)
    assert seen["sql"] == seen["mlflow"]
    assert seen["sql"]["status"] == "FINISHED"
    assert seen["sql"]["latest"] == {"loss": "0.2", "far": "1.7976931348623157e+308", "objective": "0.1", "tie": "2.0"}
    assert seen["sql"]["params"] == {"x": "0.5", "y": "2"} and seen["sql"]["name"] == "t1"


def test_the_one_transaction_writes_refuse_what_mlflow_refuses(database):
    for writes in ways(database).values():
        experiment_id, ledger = experiment(database)
        run_id, _ = writes.start(experiment_id, "trial-0000", {}, ledger, "0.0")
        writes.write(run_id, params=[Param("x", "1")])
        with pytest.raises(MlflowException, match="Changing param values is not allowed"):
            writes.write(run_id, params=[Param("x", "2")], tags=[RunTag("lost", "yes")])
        assert "lost" not in database.get_run(run_id).data.tags  # nothing of a refused write is kept
        database.delete_run(run_id)
        with pytest.raises(MlflowException, match="must be in the 'active' state"):
            writes.write(run_id, status="FINISHED")
        database.delete_experiment(experiment_id)
        with pytest.raises(MlflowException):
            writes.start(experiment_id, "trial-0001", {}, ledger, "1.0")


def test_a_lost_claim_names_its_holder_and_a_failed_start_leaves_no_run(database):
    writes = SqlWrites(database._tracking_client.store)
    experiment_id, ledger = experiment(database)
    first, holder = writes.start(experiment_id, "trial-0002", {}, ledger, "2.0")
    before = len(database.search_runs([experiment_id]))
    second, rival = writes.start(experiment_id, "trial-0002", {}, ledger, "2.0")
    assert holder == rival == first and second is None  # the claim first: a loser makes no run
    assert len(database.search_runs([experiment_id])) == before
    assert database.get_run(first).data.tags["claimed"] == "true"  # with its run, in the same transaction
    third, rival = writes.start(experiment_id, "trial-0002", {}, ledger, "2.0", losing_run=True)  # server v1's way
    assert rival == first and third not in (None, first) and "claimed" not in database.get_run(third).data.tags
    assert database.get_run(ledger).data.params == {"2.0": first}
    database.delete_run(third)
    with pytest.raises(MlflowException, match="No run with id=missing"):
        writes.start(experiment_id, "trial-0003", {}, "missing", "3.0")
    assert len(database.search_runs([experiment_id])) == before


def test_other_stores_and_other_schemas_get_mlflow_s_own_calls(store, monkeypatch, caplog):
    assert isinstance(store_writes(MlflowClient("http://127.0.0.1:9")._tracking_client.store), StoreWrites)
    local = connect(store)._tracking_client.store
    with monkeypatch.context() as old_sqlite:  # before 3.35: no INSERT ... RETURNING
        old_sqlite.setattr(local.engine.dialect, "insert_executemany_returning", False)
        assert SqlWrites.of(local) is None
    assert isinstance(SqlWrites.of(local), SqlWrites)
    monkeypatch.setattr(sql_writes, "SCHEMA", "an-older-revision")
    assert SqlWrites.of(local) is None
    assert "trials are written with MLflow's own calls" in caplog.text


def test_the_server_s_start_route_keeps_a_version_1_client_s_losing_run(store, monkeypatch):
    """A client of version 1 sends no ``losing_run`` and deletes the run a lost claim made; one of version 2 gets
    none to delete."""
    from hpo_tune.tracking import server_app

    client = connect(store)
    monkeypatch.setattr(server_app, "_store", lambda: client._tracking_client.store)
    experiment_id, ledger = experiment(client)
    body = {"experiment_id": experiment_id, "run_name": "trial-0000", "tags": {}, "ledger": ledger, "claim": "0.0"}
    won = json.loads(server_app.start(server_app.TrialStart(**body)).body)
    old = json.loads(server_app.start(server_app.TrialStart(**body)).body)
    new = json.loads(server_app.start(server_app.TrialStart(**body, losing_run=False)).body)
    assert won["holder"] == won["run_id"] == old["holder"] == new["holder"]
    assert old["run_id"] not in (None, won["run_id"]) and new["run_id"] is None
    assert server_app.version() == {"version": 2}
