"""A trial's two moments that write twice each: its start (create the run, claim its number) and its end
(log what is left, set the status).

Against the project's server (``python -m src.server``, see ``server_app``) each moment is one request;
against a local store, a database or any other MLflow server they are MLflow's own calls, in the same
order. Which one a URI gets is asked of the server once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from src.tracking.common import END_ROUTE, START_ROUTE, VERSION_ROUTE, batches


class TrialWrites:
    """A trial run's start and end on one store."""

    def __init__(self, client: MlflowClient):
        self.client = client
        self.uri = client.tracking_uri
        self.combined = _serves_trial_routes(self.uri)

    def start(self, experiment_id: str, run_name: str, tags: Mapping[str, str], ledger: str, claim: str
              ) -> tuple[str, str | None]:
        """Create a run and log ``claim`` on the ``ledger`` run with its id as the value: (the new run's id,
        the run holding the claim: the new one if it won, a rival's, or None if the claim failed otherwise)."""
        if self.combined:
            answer = self._post(START_ROUTE, {"experiment_id": experiment_id, "run_name": run_name, "tags": dict(tags),
                                        "ledger": ledger, "claim": claim})
            return answer["run_id"], answer["holder"]
        run_id = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
        try:
            self.client.log_param(ledger, claim, run_id)
        except MlflowException:
            return run_id, None
        return run_id, run_id

    def log(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
            tags: Sequence[RunTag] = ()) -> None:
        """Log ``metrics``, ``params`` and ``tags`` in as few batches as MLflow allows (one, usually)."""
        for some_metrics, some_params, some_tags in batches(metrics, params, tags):
            self.client.log_batch(run_id, metrics=some_metrics, params=some_params, tags=some_tags)

    def end(self, run_id: str, status: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
            tags: Sequence[RunTag] = ()) -> None:
        """Log ``metrics``, ``params`` and ``tags`` as ``log`` does, then end the run."""
        if not self.combined:
            self.log(run_id, metrics, params, tags)
            self.client.set_terminated(run_id, status)
            return
        *calls, (some_metrics, some_params, some_tags) = batches(metrics, params, tags)
        for metrics_before, params_before, tags_before in calls:
            self.client.log_batch(run_id, metrics=metrics_before, params=params_before, tags=tags_before)
        self._post(END_ROUTE, {"run_id": run_id, "status": status, "metrics": [
            {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step} for m in some_metrics],
            "params": {p.key: p.value for p in some_params}, "tags": {t.key: t.value for t in some_tags}})

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request_safe

        return http_request_safe(get_default_host_creds(self.uri), endpoint, "POST", json=body).json()


@functools.cache
def _serves_trial_routes(uri: str) -> bool:
    """Whether ``uri`` is a server with the project's trial routes (one request each for a start and an end)."""
    if not uri.startswith(("http://", "https://")):
        return False
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        answer = http_request(get_default_host_creds(uri), VERSION_ROUTE, "GET", max_retries=0, timeout=5,
                              raise_on_status=False)
    except MlflowException:
        return False
    return answer.status_code == 200
