"""Finding, creating and reopening studies: one parent run per study, however many processes start it.

Two processes that start the same new study at once must end up on one parent run. MLflow has no
transaction a client can hold, but it has two operations that only one caller can win: creating an
experiment of a given name, and logging a param a run already has with another value. Each study
has a *lock*: a (deleted, so hidden) experiment named after the study, created with tags naming
the study's parent run and its claim ledger. A process that finds no lock creates its parent and
ledger, then tries to create the lock; the loser deletes what it made and uses the winner's. A
parent run carries its identity (name, direction, a digest of its config) in the tags it is
created with, so a kill at any point of this leaves either nothing or a parent that the next run
adopts. ``fresh`` studies take the next generation of the lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from src.errors import StudyConflictError
from src.space import SearchSpace
from src.tracking.common import (
    IDENTITY,
    INTERRUPTED,
    PARAMS_PER_BATCH,
    RETRIED,
    ROLE,
    TRIAL,
    now_ms,
    pages,
    proposed_params,
    quote,
    upload,
)
from src.tracking.lineage import code_tags
from src.tracking.record import StudyRecord
from src.tracking.store import connect, sqlite_path
from src.trial import Direction

CLAIMS = "claims"
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
LOCK_PREFIX = "hpo-study-lock"


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

    @property
    def identity(self) -> str:
        return hashlib.sha256(json.dumps(sorted(self.config.items())).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StudyIds:
    parent: str
    claims: str


def default_artifact_location(uri: str) -> str | None:
    """Keep artifacts beside a local SQLite store (``<dir>/mlruns``) rather than under the cwd."""
    path = sqlite_path(uri) if uri.startswith("sqlite:///") else None
    return None if path is None else str(path.resolve().parent / "mlruns")


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
        self.client = connect(uri)

    def experiment_id(self, name: str) -> str:
        """The experiment's id, creating it if needed; it is marked as model training, so MLflow's UI opens
        it on its runs rather than on its GenAI overview."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=default_artifact_location(self.uri),
                                                     tags={EXPERIMENT_KIND: MODEL_TRAINING})
            except MlflowException:  # created meanwhile by another process
                experiment = self.client.get_experiment_by_name(name)
        if experiment.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
            self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return experiment.experiment_id

    def open_study(self, spec: StudySpec, space: SearchSpace, fresh: bool = False) -> StudyRecord:
        """Create the study's parent run, or reopen it after checking the config is the same.

        ``fresh`` deletes an existing study of that name (parent and trials) and starts anew.
        """
        experiment_id = self.experiment_id(spec.experiment)
        ids = self._study_ids(experiment_id, spec, fresh)
        self._check_same_config(ids.parent, spec)
        self.client.update_run(ids.parent, status="RUNNING")
        return StudyRecord(self.client, self.uri, experiment_id, ids.parent, ids.claims, space, spec.direction)

    def load_study(self, experiment: str, name: str, space: SearchSpace, direction: Direction) -> StudyRecord:
        """An existing study, for reading back (reports, benchmarks); its runs are left as they are."""
        experiment_id = self.experiment_id(experiment)
        ids = self._existing(experiment_id, name)
        return StudyRecord(self.client, self.uri, experiment_id, ids.parent, ids.claims, space, direction)

    def study_frame(self, experiment: str, name: str) -> tuple[dict[str, Any], pd.DataFrame]:
        """A study for reports: the parent's tags, metrics and times, and one row per trial attempt.

        Trial columns: ``number``, ``status``, ``objective``, ``duration_s``, ``start``, ``end``
        (epoch ms), ``run_id``, ``interrupted`` (the attempt was superseded: it died, was stopped or was
        retried, and another attempt holds its number), then ``param.<name>``, ``metric.<name>`` (last
        value) and ``tag.<name>``.
        """
        experiment_id = self.experiment_id(experiment)
        run_id = self._existing(experiment_id, name).parent
        parent = self.client.get_run(run_id)
        rows = []
        for run in pages(self.client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run_id}'"):
            if TRIAL not in run.data.tags:
                continue
            row = {"number": int(run.data.tags[TRIAL]), "status": run.info.status,
                   "objective": run.data.metrics.get("objective"), "duration_s": run.data.metrics.get("duration_s"),
                   "start": run.info.start_time, "end": run.info.end_time, "run_id": run.info.run_id,
                   "interrupted": "true" in (run.data.tags.get(INTERRUPTED), run.data.tags.get(RETRIED))}
            row |= {f"param.{k}": v for k, v in (run.data.params or proposed_params(run.data.tags)).items()}
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
        upload(self.client, run_id, files)

    def log_report(self, experiment: str, name: str, files: Mapping[str, str | bytes],
                   metrics: Mapping[str, float] | None = None) -> str:
        """Put a report's files (and headline numbers) on a run named ``report-<name>``; returns its id."""
        experiment_id = self.experiment_id(experiment)
        found = self.client.search_runs([experiment_id], f"tags.report = '{quote(name)}'", max_results=1)
        run_id = found[0].info.run_id if found else self.client.create_run(
            experiment_id, run_name=f"report-{name}", tags={"report": name}).info.run_id
        upload(self.client, run_id, files)
        if metrics:
            now = now_ms()
            self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    # -- which runs a study is ------------------------------------------------------------------

    def _existing(self, experiment_id: str, name: str) -> StudyIds:
        _, lock = self._lock(experiment_id, name)
        if lock is not None and self._active(lock.tags.get("parent")):
            return StudyIds(lock.tags["parent"], lock.tags["claims"])
        parents = self._parents(experiment_id, name)
        if not parents:
            raise LookupError(f"no study {name!r} in experiment {experiment_id!r} at {self.uri}")
        return StudyIds(parents[0], self._ledger(experiment_id, parents[0]) or "")

    def _study_ids(self, experiment_id: str, spec: StudySpec, fresh: bool) -> StudyIds:
        """The study's parent and ledger: from its lock, or made (or adopted) and locked now."""
        generation, lock = self._lock(experiment_id, spec.name)
        if lock is not None:
            if lock.lifecycle_stage == "active":  # its maker died before hiding it, or is about to
                self._hide(lock.experiment_id)
            parent = lock.tags.get("parent")
            if self._active(parent) and not fresh:
                return StudyIds(parent, lock.tags["claims"])
            generation += 1
        if fresh:
            for parent in self._parents(experiment_id, spec.name):
                self._delete_study(experiment_id, parent)
        adopted = self._parents(experiment_id, spec.name)[:1]
        parent = adopted[0] if adopted else self._create_parent(experiment_id, spec)
        claims = self._ledger(experiment_id, parent)
        made_claims = claims is None
        claims = claims or self._create_ledger(experiment_id, parent)
        if not self._take_lock(experiment_id, spec.name, generation, StudyIds(parent, claims)):
            _, lock = self._lock(experiment_id, spec.name)
            won = StudyIds(lock.tags["parent"], lock.tags["claims"])
            for run_id, made in ((parent, not adopted), (claims, made_claims)):
                if made and run_id not in (won.parent, won.claims):
                    self._delete(run_id)
            parent, claims = won.parent, won.claims
        self._remove_orphans(experiment_id, spec.name, parent)
        return StudyIds(parent, claims)

    def _lock_prefix(self, experiment_id: str, name: str) -> str:
        return f"{LOCK_PREFIX}/{experiment_id}/{hashlib.sha256(name.encode()).hexdigest()[:24]}/"

    def _lock(self, experiment_id: str, name: str) -> tuple[int, Any]:
        """The latest generation of the study's lock and the lock itself (None and 0 if there is none)."""
        prefix = self._lock_prefix(experiment_id, name)
        found = self.client.search_experiments(view_type=ViewType.ALL, filter_string=f"name LIKE '{prefix}%'")
        locks = {int(e.name.rsplit("/", 1)[1]): e for e in found if re.fullmatch(r"\d+", e.name.rsplit("/", 1)[1])}
        if not locks:
            return 0, None
        generation = max(locks)
        return generation, locks[generation]

    def _take_lock(self, experiment_id: str, name: str, generation: int, ids: StudyIds) -> bool:
        """Try to make ``ids`` the study's runs; only one process can create the lock experiment."""
        try:
            lock = self.client.create_experiment(f"{self._lock_prefix(experiment_id, name)}{generation}",
                                                 tags={"parent": ids.parent, "claims": ids.claims, "study": name})
        except MlflowException:
            return False
        self._hide(lock)
        return True

    def _hide(self, lock: str) -> None:
        """Delete a lock experiment (it is kept only as a name that cannot be taken twice): out of sight.
        Another process that found it before it was hidden may hide it at the same moment."""
        try:
            self.client.delete_experiment(lock)
        except MlflowException:
            if self.client.get_experiment(lock).lifecycle_stage == "active":
                raise

    def _active(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def _parents(self, experiment_id: str, name: str) -> list[str]:
        """Parent runs of study ``name``, oldest first."""
        runs = self.client.search_runs([experiment_id], f"tags.study = '{quote(name)}'",
                                       order_by=["attributes.start_time ASC"], max_results=100)
        return [run.info.run_id for run in runs if ROLE not in run.data.tags and TRIAL not in run.data.tags]

    def _ledger(self, experiment_id: str, parent: str) -> str | None:
        runs = self.client.search_runs(
            [experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and tags.`{ROLE}` = '{CLAIMS}'",
            order_by=["attributes.start_time ASC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def _remove_orphans(self, experiment_id: str, name: str, parent: str) -> None:
        """Delete other parents of this study that hold no trial: made by processes killed before locking."""
        for other in self._parents(experiment_id, name):
            if other != parent and not self.client.search_runs(
                    [experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{other}' and tags.{TRIAL} != ''",
                    max_results=1):
                self._delete_study(experiment_id, other)

    def _delete_study(self, experiment_id: str, parent: str) -> None:
        for child in pages(self.client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'"):
            self._delete(child.info.run_id)
        self._delete(parent)

    def _delete(self, run_id: str) -> None:
        """Delete a run that another process may have deleted already."""
        try:
            self.client.delete_run(run_id)
        except MlflowException:
            if self._active(run_id):
                raise

    def _create_parent(self, experiment_id: str, spec: StudySpec) -> str:
        tags = {"study": spec.name, "direction": spec.direction.value, "metric": spec.metric,
                IDENTITY: spec.identity, **code_tags(), **spec.tags}
        return self.client.create_run(experiment_id, run_name=spec.name, tags=tags).info.run_id

    def _create_ledger(self, experiment_id: str, parent: str) -> str:
        note = ("This study's trial-number claims: param `<number>.<attempt>` = the run that holds it. Each "
                "can be logged once, so however many processes feed the study, each trial runs once.")
        run = self.client.create_run(experiment_id, run_name=CLAIMS, tags={
            MLFLOW_PARENT_RUN_ID: parent, MLFLOW_RUN_NAME: CLAIMS, ROLE: CLAIMS, "mlflow.note.content": note})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def _check_same_config(self, run_id: str, spec: StudySpec) -> None:
        """Refuse a different config; finish recording the config if a kill cut it short."""
        run = self.client.get_run(run_id)
        recorded = run.data.params
        known = run.data.tags.get(IDENTITY)
        consistent = all(spec.config.get(k) == v for k, v in recorded.items())
        if known != spec.identity and not (known is None and consistent):
            differing = sorted(k for k in set(recorded) | set(spec.config) if recorded.get(k) != spec.config.get(k))
            shown = ", ".join(f"{k} ({recorded.get(k, '<unset>')} -> {spec.config.get(k, '<unset>')})"
                              for k in differing[:5]) or "its recorded identity differs"
            more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
            raise StudyConflictError(
                f"study {spec.name!r} already exists with a different configuration: {shown}{more}; "
                "re-run with its configuration to resume it, or pass study=<new name> to start another"
            )
        missing = [Param(k, v) for k, v in spec.config.items() if k not in recorded]
        for start in range(0, len(missing), PARAMS_PER_BATCH):
            try:
                self.client.log_batch(run_id, params=missing[start : start + PARAMS_PER_BATCH])
            except MlflowException:  # another process of the study logged them at the same moment
                now = self.client.get_run(run_id).data.params
                if any(now.get(p.key) != p.value for p in missing[start : start + PARAMS_PER_BATCH]):
                    raise
        if known is None:
            self.client.log_batch(run_id, tags=[RunTag(IDENTITY, spec.identity)])
        if spec.config_text and "config.yaml" not in {a.path for a in self.client.list_artifacts(run_id)}:
            self.client.log_text(run_id, spec.config_text, "config.yaml")
