"""The only module that talks to MLflow.

A study is a parent run; each trial is a nested child run (standard ``mlflow.parentRunId`` tag).
Everything a strategy needs is stored there, so the history read back from MLflow is the study's
state: re-running a killed study's command reopens its parent run and carries on.

Layout of what is written:

- parent: tags ``study``, ``strategy``, ``direction``, ``metric`` (and whatever the caller adds,
  e.g. ``dataset``, ``model``); params = the flattened study-defining config, which is also how a
  resumed study is checked to be the same study; artifact ``config.yaml``; metrics
  ``best_objective``, ``n_complete``, ``n_failed``, ``n_pruned``; tags ``best_run_id`` and
  ``best.<param>``.
- child: tags ``trial`` (number), ``device``, ``host``/``pid``/``pid_start`` (to tell a dead owner),
  ``strategy.<key>`` (what the strategy attached to its proposal), ``error`` when it failed and
  ``interrupted`` when its process died; params = the trial's parameters; metrics per epoch
  (``step`` = epoch), then ``objective`` and ``duration_s``. Status: RUNNING, FINISHED, FAILED,
  KILLED (pruned).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from src.errors import StudyConflictError
from src.space import SearchSpace
from src.trial import Direction, Proposal, Trial, TrialState, best_trial

logging.getLogger("alembic").setLevel(logging.WARNING)
# With a tracking server, MLflow prints a "View run ... at http://..." line for every run it ends:
# one per trial, which buries the progress bar. The parent run's URL is what a user wants, and
# the study prints its parent run id at the end.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

STRATEGY_TAG_PREFIX = "strategy."
CURVE_TAG = "curve"  # a trial's objective metric per epoch, JSON, so pruners read siblings in one query
MAX_CURVE_CHARS = 5000
_STATES = {"RUNNING": TrialState.RUNNING, "FINISHED": TrialState.COMPLETE, "FAILED": TrialState.FAILED,
           "KILLED": TrialState.PRUNED}
_PAGE = 1000
_BATCH = 100  # MLflow's limit on params per log_batch call
_METRICS_BATCH = 1000  # and on metrics


@dataclass(frozen=True)
class StudySpec:
    """What identifies a study and what its parent run records."""

    name: str
    experiment: str
    direction: Direction
    metric: str
    config: Mapping[str, str]
    tags: Mapping[str, str]
    config_text: str = ""


@dataclass(frozen=True)
class TrialSink:
    """Where a worker writes a trial: plain data, so a worker process can receive it."""

    uri: str
    experiment_id: str
    parent_run_id: str


def default_artifact_location(uri: str) -> str | None:
    """Keep artifacts beside a local SQLite store (``<dir>/mlruns``) rather than under the cwd."""
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config to ``a.b.c -> str(value)``, the form MLflow params take."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


class Tracker:
    """A connection to a tracking store: opens studies and reads them back."""

    def __init__(self, uri: str):
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)

    def experiment_id(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=default_artifact_location(self.uri))
        except MlflowException:  # created meanwhile by another process
            return self.client.get_experiment_by_name(name).experiment_id

    def find_study(self, experiment_id: str, name: str) -> str | None:
        """The parent run of study ``name``; the oldest one if a race ever created two."""
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.study = '{_quote(name)}'", order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def open_study(self, spec: StudySpec, space: SearchSpace, fresh: bool = False) -> StudyRecord:
        """Create the study's parent run, or reopen it after checking the config is the same.

        ``fresh`` deletes an existing study of that name (parent and trials) and starts anew.
        """
        experiment_id = self.experiment_id(spec.experiment)
        run_id = self.find_study(experiment_id, spec.name)
        if run_id is not None and fresh:
            for child in _pages(self.client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}'"):
                self.client.delete_run(child.info.run_id)
            self.client.delete_run(run_id)
            run_id = None
        if run_id is None:
            run_id = self._create_parent(experiment_id, spec)
        else:
            self._check_same_config(run_id, spec)
            self.client.update_run(run_id, status="RUNNING")
        return StudyRecord(self, experiment_id, run_id, space, spec.direction)

    def load_study(self, experiment: str, name: str, space: SearchSpace, direction: Direction) -> StudyRecord:
        """An existing study, for reading back (reports, benchmarks); its runs are left as they are."""
        experiment_id = self.experiment_id(experiment)
        run_id = self.find_study(experiment_id, name)
        if run_id is None:
            raise LookupError(f"no study {name!r} in experiment {experiment!r} at {self.uri}")
        return StudyRecord(self, experiment_id, run_id, space, direction)

    def study_frame(self, experiment: str, name: str) -> tuple[dict[str, Any], pd.DataFrame]:
        """A study for reports: the parent's tags, metrics and times, and one row per trial.

        Trial columns: ``number``, ``status``, ``objective``, ``duration_s``, ``start``, ``end``
        (epoch ms), ``run_id``, ``interrupted``, then ``param.<name>``, ``metric.<name>`` (last
        value) and ``tag.<name>``.
        """
        experiment_id = self.experiment_id(experiment)
        run_id = self.find_study(experiment_id, name)
        if run_id is None:
            raise LookupError(f"no study {name!r} in experiment {experiment!r} at {self.uri}")
        parent = self.client.get_run(run_id)
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}'"
        rows = []
        for run in _pages(self.client, experiment_id, query):
            row = {"number": int(run.data.tags["trial"]), "status": run.info.status,
                   "objective": run.data.metrics.get("objective"), "duration_s": run.data.metrics.get("duration_s"),
                   "start": run.info.start_time, "end": run.info.end_time, "run_id": run.info.run_id,
                   "interrupted": run.data.tags.get("interrupted") == "true"}
            row |= {f"param.{k}": v for k, v in run.data.params.items()}
            row |= {f"metric.{k}": v for k, v in run.data.metrics.items()}
            row |= {f"tag.{k}": v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            rows.append(row)
        study = {"run_id": run_id, "name": name, "experiment": experiment, "tags": dict(parent.data.tags),
                 "metrics": dict(parent.data.metrics), "start": parent.info.start_time, "end": parent.info.end_time,
                 "status": parent.info.status}
        frame = pd.DataFrame(rows)
        return study, frame.sort_values(["number", "start"]).reset_index(drop=True) if rows else frame

    def read_text(self, run_id: str, path: str) -> str | None:
        """A text artifact of a run, or None if the run has none at ``path``."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()
            except (MlflowException, OSError):
                return None

    def download(self, run_id: str, destination: Path) -> None:
        """Copy every artifact of a run into ``destination`` (reports keep the studies' tables and plots)."""
        destination.mkdir(parents=True, exist_ok=True)
        self.client.download_artifacts(run_id, "", str(destination))

    def attach(self, run_id: str, files: Mapping[str, str | bytes]) -> None:
        """Log files (text or bytes) as artifacts of a run, at their relative paths."""
        _upload(self.client, run_id, files)

    def log_report(self, experiment: str, name: str, files: Mapping[str, str | bytes],
                   metrics: Mapping[str, float] | None = None) -> str:
        """Put a report's files (and headline numbers) on a run named ``report-<name>``; returns its id."""
        experiment_id = self.experiment_id(experiment)
        found = self.client.search_runs([experiment_id], f"tags.report = '{_quote(name)}'", max_results=1)
        run_id = found[0].info.run_id if found else self.client.create_run(
            experiment_id, run_name=f"report-{name}", tags={"report": name}).info.run_id
        _upload(self.client, run_id, files)
        if metrics:
            now = _now_ms()
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _create_parent(self, experiment_id: str, spec: StudySpec) -> str:
        tags = {"study": spec.name, "direction": spec.direction.value, "metric": spec.metric, **spec.tags}
        run = self.client.create_run(experiment_id, run_name=spec.name, tags=tags)
        params = [Param(k, v) for k, v in spec.config.items()]
        for start in range(0, len(params), _BATCH):
            self.client.log_batch(run.info.run_id, params=params[start : start + _BATCH])
        if spec.config_text:
            self.client.log_text(run.info.run_id, spec.config_text, "config.yaml")
        return run.info.run_id

    def _check_same_config(self, run_id: str, spec: StudySpec) -> None:
        recorded = self.client.get_run(run_id).data.params
        differing = sorted(k for k in set(recorded) | set(spec.config) if recorded.get(k) != spec.config.get(k))
        if differing:
            shown = ", ".join(f"{k} ({recorded.get(k, '<unset>')} -> {spec.config.get(k, '<unset>')})"
                              for k in differing[:5])
            more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
            raise StudyConflictError(
                f"study {spec.name!r} already exists with a different configuration: {shown}{more}; "
                "re-run with its configuration to resume it, or pass study=<new name> to start another"
            )


class StudyRecord:
    """One study's parent run: its history (read incrementally) and its summary."""

    def __init__(self, tracker: Tracker, experiment_id: str, run_id: str, space: SearchSpace, direction: Direction,
                 refresh_margin_ms: int = 250):
        self.client = tracker.client
        self.sink = TrialSink(tracker.uri, experiment_id, run_id)
        self.space = space
        self.direction = direction
        self._margin = refresh_margin_ms
        self._trials: dict[str, Trial] = {}
        self._read_at: int | None = None
        self._uploaded: dict[str, str] = {}

    @classmethod
    def of(cls, sink: TrialSink, space: SearchSpace, direction: Direction) -> StudyRecord:
        """The study a worker writes to, for reading its siblings back (pruning)."""
        return cls(Tracker(sink.uri), sink.experiment_id, sink.parent_run_id, space, direction)

    @property
    def run_id(self) -> str:
        return self.sink.parent_run_id

    def _children(self, condition: str = "") -> Iterator[Any]:
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'" + (f" and {condition}" if condition else "")
        return _pages(self.client, self.sink.experiment_id, query)

    def history(self) -> list[Trial]:
        """All trials but interrupted attempts, ordered by number.

        The first call reads every child; later calls read only children started or ended since
        the previous read (less a margin for runs that other processes committed late), so a
        proposal does not re-scan thousands of runs.
        """
        now = _now_ms()
        if self._read_at is None:
            runs = list(self._children())
        else:
            since = self._read_at - self._margin
            runs = [*self._children(f"attributes.start_time >= {since}"),
                    *self._children(f"attributes.end_time >= {since}")]
        self._read_at = now
        for run in runs:
            self._trials[run.info.run_id] = self._to_trial(run)
        return sorted((t for t in self._trials.values() if t is not None), key=lambda t: (t.number, t.run_id))

    def _to_trial(self, run: Any) -> Trial | None:
        tags = run.data.tags
        if tags.get("interrupted") == "true":
            return None
        value = run.data.metrics.get("objective")
        return Trial(
            number=int(tags["trial"]),
            params=self.space.parse(run.data.params),
            state=_STATES.get(run.info.status, TrialState.FAILED),
            value=value,
            run_id=run.info.run_id,
            tags={k[len(STRATEGY_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(STRATEGY_TAG_PREFIX)},
            curve={int(epoch): value for epoch, value in json.loads(tags.get(CURVE_TAG, "{}")).items()},
        )

    def reap_dead_trials(self, max_retries: int = 2) -> int:
        """Settle trials whose process on this host has died (see ``lost``); returns how many.

        Trials owned by other hosts are left alone: their owner cannot be checked from here.
        """
        host = socket.gethostname()
        dead = [run for run in self._children("attributes.status = 'RUNNING'") if run.data.tags.get("host") == host
                and not _alive(int(run.data.tags.get("pid", -1)), run.data.tags.get("pid_start", ""))]
        for run in dead:
            self._settle(run, "the process running it died", max_retries)
        return len(dead)

    def lost(self, number: int, proposal: Proposal, reason: str, max_retries: int = 2) -> None:
        """A running trial's worker is gone: mark it interrupted, so the strategy proposes it again,
        unless it was already lost ``max_retries`` times, in which case it simply fails."""
        for run in self._attempt(number, proposal):
            self._settle(run, reason, max_retries)

    def _attempt(self, number: int, proposal: Proposal) -> list[Any]:
        """The trial's running child runs; one is created when its worker was lost before writing any,
        so that every attempt is on record and counts towards the retry limit."""
        runs = list(self._children(f"tags.trial = '{number}' and attributes.status = 'RUNNING'"))
        if not runs:
            recorder = TrialRecorder(self.sink, number, proposal, device="unknown")
            runs = [self.client.get_run(recorder.run_id)]
        return runs

    def _settle(self, run: Any, reason: str, max_retries: int) -> None:
        number = run.data.tags["trial"]
        tries = sum(1 for _ in self._children(f"tags.trial = '{number}' and tags.interrupted = 'true'"))
        if tries < max_retries:
            self._fail(run, [RunTag("interrupted", "true"), RunTag("error", f"interrupted: {reason}")])
        else:
            self._fail(run, [RunTag("error", f"gave up after {tries + 1} attempts: {reason}")])

    def fail_running(self, number: int, proposal: Proposal, error: str) -> None:
        """Fail a running trial for good (e.g. it ran past its time limit): it is not retried."""
        for run in self._attempt(number, proposal):
            self._fail(run, [RunTag("error", error)])

    def _fail(self, run: Any, tags: list[RunTag]) -> None:
        self.client.log_batch(run.info.run_id, tags=tags)
        self.client.set_terminated(run.info.run_id, "FAILED")

    def write_summary(self, trials: list[Trial]) -> None:
        """Put the best trial and the counts on the parent run, so the UI shows them at a glance."""
        best = best_trial(trials, self.direction)
        counts = {state: sum(t.state is state for t in trials) for state in TrialState}
        now = _now_ms()
        step = sum(t.finished for t in trials)
        metrics = [Metric(f"n_{state.value}", counts[state], now, step) for state in
                   (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)]
        tags = []
        if best is not None:
            metrics.append(Metric("best_objective", best.value, now, step))
            tags = [RunTag("best_run_id", best.run_id), RunTag("best_trial", str(best.number)),
                    *(RunTag(f"best.{k}", str(v)) for k, v in best.params.items())]
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        """Upload files that are new or changed since this record last uploaded them."""
        changed = {name: content for name, content in files.items() if self._uploaded.get(name) != _digest(content)}
        _upload(self.client, self.run_id, changed)
        self._uploaded |= {name: _digest(content) for name, content in changed.items()}

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


class TrialRecorder:
    """Writes one trial's child run; created inside whichever worker runs the trial.

    Per-epoch metrics are buffered and written at most every ``flush_s`` seconds (and when the
    trial ends), so a trial of many short epochs costs one call rather than one per epoch, while a
    long trial's learning curve still shows up as it trains.
    """

    def __init__(self, sink: TrialSink, number: int, proposal: Proposal, device: str, flush_s: float = 1.0,
                 curve_metric: str | None = None):
        self.client = MlflowClient(tracking_uri=sink.uri)
        self.flush_s = flush_s
        self.curve_metric = curve_metric  # its per-epoch values are kept on the run as one tag, for pruners
        self.curve: dict[int, float] = {}
        self._pending: list[Metric] = []
        self._flushed = time.monotonic()
        me = psutil.Process()
        tags = {
            MLFLOW_PARENT_RUN_ID: sink.parent_run_id,
            MLFLOW_RUN_NAME: f"trial-{number:04d}",
            "trial": str(number),
            "device": device,
            "host": socket.gethostname(),
            "pid": str(me.pid),
            "pid_start": repr(me.create_time()),
            **{f"{STRATEGY_TAG_PREFIX}{k}": str(v) for k, v in proposal.tags.items()},
        }
        self.run_id = self.client.create_run(sink.experiment_id, run_name=tags[MLFLOW_RUN_NAME], tags=tags).info.run_id
        params = [Param(k, str(v)) for k, v in proposal.params.items()]
        for start in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + _BATCH])

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        now = _now_ms()
        self._pending += [Metric(k, float(v), now, epoch) for k, v in metrics.items()]
        if self.curve_metric in metrics:
            self.curve[epoch] = float(metrics[self.curve_metric])
        if time.monotonic() - self._flushed >= self.flush_s:
            self._write(metrics=[])

    def _write(self, metrics: list[Metric], tags: Sequence[RunTag] = ()) -> None:
        """One call for the buffered metrics, ``metrics`` and ``tags`` (chunked at MLflow's limit)."""
        batch, self._pending = [*self._pending, *metrics], []
        for start in range(0, max(len(batch), 1), _METRICS_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[start : start + _METRICS_BATCH],
                                  tags=list(tags) if start == 0 else [])
        self._flushed = time.monotonic()

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        _upload(self.client, self.run_id, files)

    def _curve_tag(self) -> list[RunTag]:
        text = json.dumps(self.curve)
        while len(text) > MAX_CURVE_CHARS:  # a very long training keeps its latest epochs
            self.curve.pop(min(self.curve))
            text = json.dumps(self.curve)
        return [RunTag(CURVE_TAG, text)] if self.curve else []

    def complete(self, value: float, duration_s: float) -> None:
        now = _now_ms()
        self._write([Metric("objective", value, now, 0), Metric("duration_s", duration_s, now, 0)], self._curve_tag())
        self.client.set_terminated(self.run_id, "FINISHED")

    def prune(self, reason: str, duration_s: float) -> None:
        self._write([Metric("duration_s", duration_s, _now_ms(), 0)], [RunTag("pruned", reason), *self._curve_tag()])
        self.client.set_terminated(self.run_id, "KILLED")

    def fail(self, error: BaseException, duration_s: float, interrupted: bool = False) -> None:
        tags = [RunTag("error", f"{type(error).__name__}: {error}"[:5000]), *self._curve_tag()]
        if interrupted:
            tags.append(RunTag("interrupted", "true"))
        self._write([Metric("duration_s", duration_s, _now_ms(), 0)], tags)
        self.client.set_terminated(self.run_id, "FAILED")


def _pages(client: MlflowClient, experiment_id: str, query: str) -> Iterator[Any]:
    """Every run matching ``query``, page by page."""
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=_PAGE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _digest(content: str | bytes) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def _upload(client: MlflowClient, run_id: str, files: Mapping[str, str | bytes]) -> None:
    """Log each ``path/name -> content`` as an artifact at that path."""
    for name, content in files.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            folder = str(Path(name).parent)
            client.log_artifact(run_id, str(path), None if folder == "." else folder)


def _alive(pid: int, started: str) -> bool:
    try:
        return repr(psutil.Process(pid).create_time()) == started
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def _now_ms() -> int:
    return int(time.time() * 1000)

