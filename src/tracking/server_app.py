"""The project's tracking server: MLflow's, plus two routes that write a trial's start and its end.

A tracked trial is four writes to the store: create its run, claim its number, log its result, end it.
Through a plain ``mlflow server`` each write is a request, and a request costs the server more than the
write (25-80 ms of request against a few ms of SQLite here). These routes make the two writes of a
trial's start, and the two of its end, for one request each: the same store calls in the same order as a
client makes them, so exactly-once holds as it does on a local store (a request cut off half-way leaves
what a process killed between two writes leaves, and the record settles it the same way). Clients ask
``VERSION_ROUTE`` first and use MLflow's REST API with a server that lacks them (``src.tracking.writes``).

Served by ``python -m src.server``: uvicorn runs ``create_app``, MLflow's own app with these routes in front.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.time import get_current_time_millis
from pydantic import BaseModel

from src.tracking.common import END_ROUTE, START_ROUTE, VERSION_ROUTE
from src.tracking.store import relax_sqlite_syncs


def _store() -> Any:
    from mlflow.server.handlers import _get_tracking_store

    return _get_tracking_store()


def version() -> dict[str, int]:
    return {"version": 1}


class TrialStart(BaseModel):
    experiment_id: str
    run_name: str
    tags: dict[str, str]
    ledger: str  # the study's claim ledger run
    claim: str  # <number>.<attempt>


class MetricValue(BaseModel):
    key: str
    value: float
    timestamp: int
    step: int


class TrialEnd(BaseModel):
    run_id: str
    status: str  # FINISHED, FAILED or KILLED
    metrics: list[MetricValue] = []
    params: dict[str, str] = {}
    tags: dict[str, str] = {}


def start(body: TrialStart) -> JSONResponse:
    """Create a trial's run and claim its number on the ledger: ``run_id`` and the run that holds the claim
    (``holder``: the new run if it won, the rival that holds it, or null if the claim failed otherwise)."""
    store = _store()
    try:
        run = store.create_run(experiment_id=body.experiment_id, user_id=body.tags.get("mlflow.user", "unknown"),
                               start_time=get_current_time_millis(),
                               tags=[RunTag(k, v) for k, v in body.tags.items()], run_name=body.run_name)
    except MlflowException as error:
        return _refused(error)
    run_id = run.info.run_id
    try:
        store.log_param(body.ledger, Param(body.claim, run_id))
        holder = run_id
    except MlflowException:
        holder = store.get_run(body.ledger).data.params.get(body.claim)
    return JSONResponse({"run_id": run_id, "holder": holder})


def end(body: TrialEnd) -> JSONResponse:
    """Log a trial's last metrics, params and tags in one batch, then end its run with ``status``."""
    store = _store()
    try:
        store.log_batch(body.run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in body.metrics],
                        params=[Param(k, v) for k, v in body.params.items()],
                        tags=[RunTag(k, v) for k, v in body.tags.items()])
        store.update_run_info(body.run_id, RunStatus.from_string(body.status), get_current_time_millis(), None)
    except MlflowException as error:
        return _refused(error)
    return JSONResponse({})


def _refused(error: MlflowException) -> JSONResponse:
    """MLflow's own error body, so the client raises the MlflowException the store raised here."""
    return JSONResponse({"error_code": error.error_code, "message": error.message},
                        status_code=error.get_http_status_code())


def create_app() -> FastAPI:
    """MLflow's server app (its FastAPI app around its Flask app), with the project's routes tried first."""
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")  # MLflow's, each start
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app

    relax_sqlite_syncs()  # a WAL store behind the server syncs at checkpoints, as the project's clients do
    app = create_fastapi_app(flask_app)
    router = APIRouter()
    router.add_api_route(VERSION_ROUTE, version, methods=["GET"])
    router.add_api_route(START_ROUTE, start, methods=["POST"])
    router.add_api_route(END_ROUTE, end, methods=["POST"])
    app.router.routes[0:0] = router.routes  # before the mount of MLflow's Flask app at /, which takes any path
    return app
