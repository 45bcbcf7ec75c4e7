"""The project's tracking server: MLflow's, plus two routes that write a trial's start and its end.

A tracked trial is four writes to the store: create its run, claim its number, log its result, end it.
Through a plain ``mlflow server`` each write is a request, and a request costs the server more than the
write (25-80 ms of request against a few ms of SQLite here). These routes make the two writes of a
trial's start, and the two of its end, for one request each, written as a local store's clients write them
(``writes.store_writes``: one transaction each on SQLite or PostgreSQL, the store's own calls in the same
order on another), so exactly-once holds as it does on a local store. Clients ask ``VERSION_ROUTE`` first
and use MLflow's REST API with a server that lacks them (``hpo_tune.tracking.writes``).

Served by ``python -m hpo_tune.server``: uvicorn runs ``create_app``, MLflow's own app with these routes beside it.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from hpo_tune.tracking.common import END_ROUTE, ROUTES, START_ROUTE, VERSION_ROUTE
from hpo_tune.tracking.store import relax_sqlite_syncs
from hpo_tune.tracking.writes import store_writes


def _store() -> Any:
    from mlflow.server.handlers import _get_tracking_store

    return _get_tracking_store()


def version() -> dict[str, int]:
    return {"version": 2}  # 2: a start may make no run for a lost claim (losing_run)


class TrialStart(BaseModel):
    experiment_id: str
    run_name: str
    tags: dict[str, str]
    ledger: str  # the study's claim ledger run
    claim: str  # <number>.<attempt>
    losing_run: bool = True  # make the run even if the claim is lost (clients of version 1 delete it)


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
    """Claim a trial's number on the ledger and create its run: ``run_id`` (null where a lost claim made no run)
    and the run that holds the claim (``holder``: the new run if it won, the rival that holds it, or null if the
    claim failed otherwise)."""
    try:
        run_id, holder = store_writes(_store()).start(body.experiment_id, body.run_name, body.tags, body.ledger,
                                                      body.claim, losing_run=body.losing_run)
    except MlflowException as error:
        return _refused(error)
    return JSONResponse({"run_id": run_id, "holder": holder})


def end(body: TrialEnd) -> JSONResponse:
    """Log a trial's last metrics, params and tags in one batch, then end its run with ``status``."""
    try:
        store_writes(_store()).write(body.run_id, [Metric(m.key, m.value, m.timestamp, m.step) for m in body.metrics],
                                     [Param(k, v) for k, v in body.params.items()],
                                     [RunTag(k, v) for k, v in body.tags.items()], status=body.status)
    except MlflowException as error:
        return _refused(error)
    return JSONResponse({})


def _refused(error: MlflowException) -> JSONResponse:
    """MLflow's own error body, so the client raises the MlflowException the store raised here."""
    return JSONResponse({"error_code": error.error_code, "message": error.message},
                        status_code=error.get_http_status_code())


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """MLflow's server app (its FastAPI app around its Flask app), with the project's routes in an app of their
    own in front: MLflow's security checks (allowed hosts, CORS, headers) guard both, but the routes skip
    MLflow's per-request middlewares (workspaces, which these stores do not use, and gateway timing), which
    cost a request more than its store writes."""
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")  # MLflow's, each start
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app
    from mlflow.server.fastapi_security import init_fastapi_security

    relax_sqlite_syncs()  # a WAL store behind the server syncs at checkpoints, as the project's clients do
    mlflow_app = create_fastapi_app(flask_app)
    routes = FastAPI()
    init_fastapi_security(routes)
    routes.add_api_route(VERSION_ROUTE, version, methods=["GET"])
    routes.add_api_route(START_ROUTE, start, methods=["POST"])
    routes.add_api_route(END_ROUTE, end, methods=["POST"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        served = scope["type"] == "http" and scope["path"].startswith(f"{ROUTES}/")
        await (routes if served else mlflow_app)(scope, receive, send)

    return app
