"""A trial's two moments that write twice each: its start (create the run, claim its number) and its end
(log what is left, set the status), and the writes in between.

Three ways to make them, picked once per store:

- against the project's server (``python -m hpo_tune.server``, see ``server_app``) a start and an end are one
  request each, which the server writes as below;
- on MLflow's SQL store over SQLite or PostgreSQL (a local store, or the server's own), each moment is one
  transaction (``sql_writes``);
- on any other store (another MLflow server, a file store, MySQL) they are the store's own calls, in the
  same order.
"""

from __future__ import annotations

import base64
import functools
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_USER
from mlflow.utils.time import get_current_time_millis

from hpo_tune.tracking.common import END_ROUTE, START_ROUTE, VERSION_ROUTE, batches

SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"


class RunWrites(Protocol):
    """A store's way to start a trial run and to write into it."""

    def start(self, experiment_id: str, run_name: str, tags: Mapping[str, str], ledger: str, claim: str,
              losing_run: bool = False) -> tuple[str | None, str | None]: ...

    def write(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
              tags: Sequence[RunTag] = (), status: str | None = None) -> None: ...


class StoreWrites:
    """Any MLflow store's own calls: two for a start, one or two for a write."""

    def __init__(self, store: Any):
        self.store = store

    def start(self, experiment_id: str, run_name: str, tags: Mapping[str, str], ledger: str, claim: str,
              losing_run: bool = True) -> tuple[str | None, str | None]:
        """As ``SqlWrites.start``, but the run is on record before the claim is tried (so it is made whatever
        ``losing_run`` says), and the holder is None when the claim failed (the caller reads the ledger)."""
        run = self.store.create_run(experiment_id=experiment_id, user_id=tags.get(MLFLOW_USER, "unknown"),
                                    start_time=get_current_time_millis(),
                                    tags=[RunTag(k, v) for k, v in tags.items()], run_name=run_name)
        run_id = run.info.run_id
        try:
            self.store.log_param(ledger, Param(claim, run_id))
        except MlflowException:
            return run_id, None
        return run_id, run_id

    def write(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
              tags: Sequence[RunTag] = (), status: str | None = None) -> None:
        if metrics or params or tags or status is None:  # with nothing to log, the status update is the write
            self.store.log_batch(run_id, metrics=list(metrics), params=list(params), tags=list(tags))
        if status is not None:
            self.store.update_run_info(run_id, RunStatus.from_string(status), get_current_time_millis(), None)


@functools.cache  # MLflow keeps one store per URI and process; the statements are built once for it
def store_writes(store: Any) -> RunWrites:
    """The fastest way ``store`` offers. ``SqlWrites`` (and with it MLflow's SQL store and SQLAlchemy, about
    0.6 s of a process's start-up) is imported only where the store is MLflow's SQL store, whose module is
    then loaded already: a worker of a study behind a server never loads them."""
    if SQL_STORE_MODULE not in sys.modules:
        return StoreWrites(store)
    from hpo_tune.tracking.sql_writes import SqlWrites

    return SqlWrites.of(store) or StoreWrites(store)


class TrialWrites:
    """A trial run's start, writes and end on one store."""

    def __init__(self, client: MlflowClient):
        self.routes = _trial_routes(client.tracking_uri)
        self.store = store_writes(client._tracking_client.store)

    def start(self, experiment_id: str, run_name: str, tags: Mapping[str, str], ledger: str, claim: str
              ) -> tuple[str | None, str | None]:
        """Log ``claim`` on the ``ledger`` run for a new run: (the new run's id, or None where a lost claim made
        no run; the run holding the claim: the new one if it won, a rival's, or None if the claim failed
        otherwise). A server of version 1 makes the run whatever the claim's fate."""
        if self.routes:
            answer = self._post(START_ROUTE, {"experiment_id": experiment_id, "run_name": run_name, "tags": dict(tags),
                                              "ledger": ledger, "claim": claim, "losing_run": False})
            return answer["run_id"], answer["holder"]
        return self.store.start(experiment_id, run_name, tags, ledger, claim)

    def log(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
            tags: Sequence[RunTag] = ()) -> None:
        """Log ``metrics``, ``params`` and ``tags`` in as few writes as MLflow's limits allow (one, usually)."""
        for batch in batches(metrics, params, tags):
            self.store.write(run_id, *batch)

    def end(self, run_id: str, status: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
            tags: Sequence[RunTag] = ()) -> None:
        """Log ``metrics``, ``params`` and ``tags`` as ``log`` does, and end the run with the last write."""
        *before, (some_metrics, some_params, some_tags) = batches(metrics, params, tags)
        for batch in before:
            self.store.write(run_id, *batch)
        if not self.routes:
            self.store.write(run_id, some_metrics, some_params, some_tags, status=status)
            return
        self._post(END_ROUTE, {"run_id": run_id, "status": status, "metrics": [
            {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step} for m in some_metrics],
            "params": {p.key: p.value for p in some_params}, "tags": {t.key: t.value for t in some_tags}})

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        from mlflow.utils.request_utils import _get_http_response_with_retries
        from mlflow.utils.rest_utils import verify_rest_response

        host, options = self.routes
        response = _get_http_response_with_retries("POST", f"{host}{endpoint}", **options, json=body)
        return verify_rest_response(response, endpoint).json()


@functools.cache
def _trial_routes(uri: str) -> tuple[str, dict[str, Any]] | None:
    """Where and how to send requests to ``uri``'s trial routes (one request each for a start and an end);
    None if it is not a server that has them, or one that takes an authentication only MLflow's own calls
    make. MLflow resolves its request headers (Databricks probes included) on every request, which costs
    more than the request does here: they are resolved once, with the credentials, retries and timeout
    MLflow would use."""
    if not uri.startswith(("http://", "https://")):
        return None
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )
    from mlflow.tracking.request_header.registry import resolve_request_headers
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import _TRANSIENT_FAILURE_RESPONSE_CODES, http_request

    creds = get_default_host_creds(uri)
    if creds.aws_sigv4 or creds.auth or creds.use_databricks_sdk or creds.client_secret:
        return None
    try:
        answer = http_request(creds, VERSION_ROUTE, "GET", max_retries=0, timeout=5, raise_on_status=False)
    except MlflowException:
        return None
    if answer.status_code != 200:
        return None
    headers = dict(resolve_request_headers())
    if creds.username and creds.password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    elif creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    return creds.host, {"max_retries": MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(),
                        "backoff_factor": MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
                        "backoff_jitter": MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get(),
                        "retry_codes": _TRANSIENT_FAILURE_RESPONSE_CODES, "headers": headers, "verify": creds.verify,
                        "cert": creds.client_cert_path, "timeout": MLFLOW_HTTP_REQUEST_TIMEOUT.get()}
