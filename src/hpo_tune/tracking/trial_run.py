"""Writing one trial's run: the recorder in whichever worker runs it, the heartbeat in its driver."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunTag

from hpo_tune.resolvers import PACKAGE
from hpo_tune.tracking.common import (
    CHECKPOINT,
    CHECKPOINTS,
    CLAIMED,
    CURVE_TAG,
    ERROR,
    HEARTBEAT,
    INTERRUPTED,
    MODEL,
    PAUSED,
    RUNG_PREFIX,
    STATE,
    WORKER,
    global_tracking_uri,
    now_ms,
    objective_key,
    upload,
)
from hpo_tune.tracking.store import mlflow_client
from hpo_tune.tracking.writes import TrialWrites

if TYPE_CHECKING:
    from hpo_tune.space import SearchSpace
    from hpo_tune.tracking.record import MlflowTrialStore
    from hpo_tune.trial import Direction

MAX_CURVE_CHARS = 5000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSink:
    """Where a worker writes a trial (``hpo_tune.storage.base.TrialSink``): plain data, so a worker process can
    receive it."""

    uri: str
    experiment_id: str
    parent_run_id: str

    def recorder(self, run_id: str, params: Mapping[str, Any], curve_metric: str | None) -> TrialRecorder:
        return TrialRecorder(self, run_id, params, curve_metric=curve_metric)

    def reader(self, space: SearchSpace, direction: Direction) -> MlflowTrialStore:
        """A reader of the study for one worker: it claims nothing (no ledger) and reads incrementally."""
        from hpo_tune.tracking.record import MlflowTrialStore

        return MlflowTrialStore(mlflow_client(self.uri), self.uri, self.experiment_id, self.parent_run_id, "",
                                space, direction)


class TrialRecorder:
    """Writes one trial's params, metrics and ending into its run (which the driver created and claimed).

    The driver's part of a trial is two writes (create the run with its parameters as a tag, claim its
    number); the recorder's first write logs the parameters as MLflow params and marks the run claimed,
    together with whatever metrics it writes then, so a trial costs the store four writes, not five.
    Per-epoch metrics are buffered and written at most every ``flush_s`` seconds (and when the trial
    ends), so a trial of many short epochs costs one call rather than one per epoch, while a long
    trial's learning curve (and its params, from the first epoch on) still shows up as it trains.
    """

    def __init__(self, sink: TrialSink, run_id: str, params: Mapping[str, Any], flush_s: float = 1.0,
                 curve_metric: str | None = None):
        self.client = mlflow_client(sink.uri)
        self.writes = TrialWrites(self.client)
        self.experiment_id = sink.experiment_id
        self.run_id = run_id
        self.flush_s = flush_s
        self.curve_metric = curve_metric  # its per-epoch values are kept on the run as one tag, for pruners
        self.curve: dict[int, float] = {}
        self._pending: list[Metric] = []
        self._unlogged: list[Param] | None = [Param(k, str(v)) for k, v in params.items()]  # None once written
        self._flushed = time.monotonic()

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        now = now_ms()
        self._pending += [Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        if self.curve_metric in metrics:
            self.curve[epoch] = float(metrics[self.curve_metric])
        if time.monotonic() - self._flushed >= self.flush_s:
            self.writes.log(self.run_id, *self._take([], []))

    def _end(self, status: str, metrics: list[Metric], tags: Sequence[RunTag]) -> None:
        """The last write: what is left, and which process ran the trial (its driver created the run)."""
        worker = RunTag(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        self.writes.end(self.run_id, status, *self._take(metrics, [*tags, *self._curve_tag(), worker]))

    def _take(self, metrics: list[Metric], tags: list[RunTag]) -> tuple[list[Metric], list[Param], list[RunTag]]:
        """What the next write carries: the buffered metrics, ``metrics`` and ``tags``, and the first time also
        the params and the claimed tag."""
        first = [RunTag(CLAIMED, "true")] if self._unlogged is not None else []
        taken = [*self._pending, *metrics], self._unlogged or [], [*first, *tags]
        self._pending, self._unlogged, self._flushed = [], None, time.monotonic()
        return taken

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        upload(self.client, self.run_id, files)

    def rung(self, epoch: int, value: float) -> None:
        """The value at a rung, at once and with the metrics buffered so far: other workers compare with it."""
        self.writes.log(self.run_id, *self._take([], [RunTag(f"{RUNG_PREFIX}{epoch}", repr(float(value)))]))

    def pause(self, epoch: int, state: Any, duration_s: float) -> None:
        if state is not None:
            self.log_artifacts({checkpoint_path(epoch): to_bytes(state)})
        self._end("KILLED", [Metric("duration_s", duration_s, now_ms(), epoch)], [RunTag(STATE, PAUSED)])

    def checkpoint(self, epoch: int, state: Any) -> None:
        """The state as an artifact, then (with the buffered metrics and the curve) the tag that points at it."""
        self.log_artifacts({checkpoint_path(epoch): to_bytes(state)})
        self.writes.log(self.run_id, *self._take([], [RunTag(CHECKPOINT, str(epoch)), *self._curve_tag()]))

    def restore(self, epoch: int, run_id: str | None = None) -> Any:
        import tempfile

        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self.client.download_artifacts(run_id or self.run_id, checkpoint_path(epoch), folder)
            except (MlflowException, OSError):
                return None  # it paused without a state to keep: the objective starts again
            with open(path, "rb") as file:
                return from_bytes(file.read())

    def _curve_tag(self) -> list[RunTag]:
        text = json.dumps(self.curve)
        while len(text) > MAX_CURVE_CHARS:  # a very long training keeps its latest epochs
            self.curve.pop(min(self.curve))
            text = json.dumps(self.curve)
        return [RunTag(CURVE_TAG, text)] if self.curve else []

    def complete(self, value: float, duration_s: float, model: str | None = None,
                 values: tuple[float, ...] = ()) -> None:
        """``value`` is the metric ``objective``; a study of several objectives logs each as ``objective_<i>``."""
        now = now_ms()
        self._end("FINISHED", [Metric("objective", value, now, 0), Metric("duration_s", duration_s, now, 0),
                               *(Metric(objective_key(i), v, now, 0) for i, v in enumerate(values))],
                  [RunTag(MODEL, model)] if model else [])

    def log_model(self, model: Any, input_example: Any) -> str:
        """Log a trained torch model as this run's MLflow model (pytorch flavour, so pyfunc loads it too),
        with its signature and input example; returns its ``models:/`` URI.

        The model is moved to the CPU (a model trained on a GPU loads anywhere), and the project's
        ``src`` travels with it, so its classes unpickle wherever it is loaded or served.
        """
        import mlflow
        import mlflow.pytorch
        import numpy as np
        import torch
        from mlflow.models import infer_signature

        model = getattr(model, "_orig_mod", model).to("cpu").eval()  # a torch.compile'd model's own module
        example = input_example.detach().cpu().float().numpy() if torch.is_tensor(input_example) else \
            np.asarray(input_example, dtype=np.float32)
        with torch.no_grad():
            output = model(torch.from_numpy(example)).numpy()
        logged = self.client.create_logged_model(self.experiment_id, name="model", source_run_id=self.run_id)
        with global_tracking_uri(self.client.tracking_uri), _quiet("mlflow.pytorch"):
            info = mlflow.pytorch.log_model(  # into the logged model made above: in the run's own experiment
                model, name="model", run_id=self.run_id, model_id=logged.model_id,
                signature=infer_signature(example, output),
                input_example=example, serialization_format="pickle", code_paths=[str(PACKAGE)],
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                                  f"mlflow=={mlflow.__version__}"])
        return info.model_uri

    @contextmanager
    def system_metrics(self, enabled: bool, interval_s: float = 5.0) -> Iterator[None]:
        """MLflow's system metrics (CPU, memory, GPU when present) on this run while the trial trains."""
        if not enabled:
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(self.run_id, sampling_interval=interval_s, tracking_uri=self.client.tracking_uri)
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

    def prune(self, reason: str, duration_s: float) -> None:
        self._end("KILLED", [Metric("duration_s", duration_s, now_ms(), 0)], [RunTag("pruned", reason)])

    def fail(self, error: BaseException, duration_s: float, interrupted: bool = False) -> None:
        tags = [RunTag(ERROR, f"{type(error).__name__}: {error}"[:5000])]
        if interrupted:
            tags.append(RunTag(INTERRUPTED, "true"))
        self._end("FAILED", [Metric("duration_s", duration_s, now_ms(), 0)], tags)


def checkpoint_path(epoch: int) -> str:
    return f"{CHECKPOINTS}/epoch_{epoch:04d}.pt"


def to_bytes(state: Any) -> bytes:
    """A paused trial's state as torch.save writes it (tensors, state_dicts, plain Python)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    """What ``to_bytes`` wrote. Unpickling may run code: resume only from stores you trust (as models)."""
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=False)


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Errors only: MLflow warns at every pickled model that unpickling runs code (load models only from
    stores you trust; the README says so), which would print a paragraph per new best trial."""
    quieted = logging.getLogger(logger)
    level = quieted.level
    quieted.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quieted.setLevel(level)


class Heartbeat:
    """Refreshes the ``heartbeat`` tag of the runs this driver owns, from a background thread.

    Other processes of the study (on any host) take a running trial whose heartbeat is older than
    their ``stale_after_s`` as dead and run its number again; a trial that ends stops beating.
    """

    def __init__(self, uri: str, interval_s: float):
        self.client = mlflow_client(uri)
        self.interval_s = interval_s
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hpo-heartbeat", daemon=True)
        self._thread.start()

    def add(self, run_id: str) -> None:
        with self._lock:
            self._runs.add(run_id)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._runs.discard(run_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                runs = sorted(self._runs)
            for run_id in runs:
                try:
                    self.client.set_tag(run_id, HEARTBEAT, str(now_ms()))
                except Exception as error:  # noqa: BLE001 - a store hiccup must not stop the beat
                    log.warning("heartbeat of run %s not written: %s", run_id, error)
