"""What the tracking modules share: tag names, who owns a run, paging, uploads, the clock."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient

logging.getLogger("alembic").setLevel(logging.WARNING)
# With a tracking server, MLflow prints a "View run ... at http://..." line for every run it ends:
# one per trial, which buries the progress bar. The parent run's URL is what a user wants, and
# the study prints its parent run id at the end.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

# Tags of a trial's child run (see the package docstring for the whole layout).
TRIAL = "trial"  # its number
ATTEMPT = "attempt"  # which claim of that number it holds (0, 1, ... as earlier attempts died)
CLAIMED = "claimed"  # "true" once the run won its claim, written with its first write after it (see record.py)
PROPOSED = "proposed"  # its parameters as JSON, set when it is created: they are logged as params with its first write
HEARTBEAT = "heartbeat"  # epoch ms, refreshed by the owning driver while the run is RUNNING
HOST, PID, PID_START = "host", "pid", "pid_start"  # the owning driver, to tell a dead owner on its host
RECORD = "record"  # which MlflowTrialStore (one per driver) started it: that store need not read it back
WORKER = "worker"  # host:pid of the process that ran the trial (a worker of the driver, or the driver)
INTERRUPTED = "interrupted"  # "true": the attempt died or was stopped; the number runs again
RETRIED = "retried"  # "true": a failed attempt that retry_failed sent round again
WORKER_DIED = "worker_died"  # "true": its worker process died under it (counts towards max_retries)
ERROR = "error"
MODEL = "model"  # the URI of the trial's logged MLflow model (models:/m-...), when it kept one
STRATEGY_TAG_PREFIX = "strategy."
CURVE_TAG = "curve"  # a trial's objective metric per epoch, JSON, so pruners read siblings in one query
RUNG_PREFIX = "rung."  # rung.<epoch>: the trial's value at a multi-fidelity pruner's rung (hpo_tune.pruning.halving)
PROMOTED_PREFIX = "promoted."  # promoted.<epoch>: host:pid of the driver that resumed it past that rung
STATE = "state"  # "PAUSED" while a promote-mode pruner keeps the trial at a rung (run status KILLED)
PAUSED = "PAUSED"
CHECKPOINTS = "checkpoints"  # artifact folder of a trial's saved states: epoch_<epoch>.pt (torch.save)
CHECKPOINT = "checkpoint"  # the last epoch the trial saved a state at (checkpoint_every), once the file is there
ROLE = "hpo.role"  # "claims" on the study's claim ledger (a run in the companion experiment; a child, in old studies)
IDENTITY = "identity"  # on the parent: a digest of the study-defining config, set when the run is created

# The project's server routes (``server_app``): a trial's start and its end, one request each.
ROUTES = "/api/hpo/1"
VERSION_ROUTE, START_ROUTE, END_ROUTE = f"{ROUTES}/version", f"{ROUTES}/trials/start", f"{ROUTES}/trials/end"

PAGE = 1000
PARAMS_PER_BATCH = 100  # MLflow's limit on params, and on tags, per log_batch call
ENTITIES_PER_BATCH = 1000  # and on metrics, params and tags together
TAG_CHARS = 8000  # and on a tag's value


@dataclass(frozen=True)
class Owner:
    """The process that owns a run: on its own host, whether it still lives can be checked directly."""

    host: str
    pid: int
    started: str

    @classmethod
    def me(cls) -> Owner:
        process = psutil.Process()
        return cls(socket.gethostname(), process.pid, repr(process.create_time()))

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> Owner:
        try:
            pid = int(tags.get(PID, -1))
        except ValueError:
            pid = -1
        return cls(tags.get(HOST, ""), pid, tags.get(PID_START, ""))

    def tags(self) -> dict[str, str]:
        return {HOST: self.host, PID: str(self.pid), PID_START: self.started}

    def local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether the owner runs (only meaningful on its host); a reused pid is told apart by its start time."""
        try:
            return repr(psutil.Process(self.pid).create_time()) == self.started
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False


@contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's model functions (logging a model, registering a ``models:/`` URI) use the process-wide
    tracking URI, not a client's: point it at the study's store meanwhile."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def heartbeat_ms(run: Any) -> int:
    """When a run's owner last said it was alive (runs from before heartbeats: when they started)."""
    try:
        return int(run.data.tags[HEARTBEAT])
    except (KeyError, ValueError):
        return int(run.info.start_time or 0)


def pages(client: MlflowClient, experiment_id: str, query: str, view: int = ViewType.ACTIVE_ONLY) -> Iterator[Any]:
    """Every run matching ``query`` (deleted ones too with ``ViewType.ALL``), page by page."""
    token = None
    while True:
        page = client.search_runs([experiment_id], query, run_view_type=view, max_results=PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def batches(metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
            ) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """(metrics, params, tags) of each ``log_batch`` call that writes them all within MLflow's limits: one
    call in the usual case, and at least one (a call with nothing in it still checks the run is there)."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while True:
        some_params, params = params[:PARAMS_PER_BATCH], params[PARAMS_PER_BATCH:]
        some_tags, tags = tags[:PARAMS_PER_BATCH], tags[PARAMS_PER_BATCH:]
        room = ENTITIES_PER_BATCH - len(some_params) - len(some_tags)
        some_metrics, metrics = metrics[:room], metrics[room:]
        yield some_metrics, some_params, some_tags
        if not (metrics or params or tags):
            return


def proposed_params(tags: Mapping[str, str]) -> dict[str, str]:
    """A run's parameters as its creator proposed them (``PROPOSED``), before they are logged as params."""
    try:
        return json.loads(tags[PROPOSED])
    except (KeyError, ValueError):
        return {}


def objective_key(index: int) -> str:
    """The metric holding objective ``index`` of a study of several objectives (``objective`` is the first too)."""
    return f"objective_{index}"


def objective_values(metrics: Mapping[str, float]) -> tuple[float, ...]:
    """A run's objective values in order, as ``objective_key`` logged them (empty for a single objective)."""
    values = []
    while objective_key(len(values)) in metrics:
        values.append(metrics[objective_key(len(values))])
    return tuple(values)


def digest(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def upload(client: MlflowClient, run_id: str, files: Mapping[str, str | bytes]) -> None:
    """Log each ``path/name -> content`` as an artifact at that path."""
    for name, content in files.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            folder = str(Path(name).parent)
            client.log_artifact(run_id, str(path), None if folder == "." else folder)


def quote(text: str) -> str:
    return text.replace("'", "\\'")


def now_ms() -> int:
    return int(time.time() * 1000)
