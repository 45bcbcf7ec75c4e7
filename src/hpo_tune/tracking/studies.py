"""Finding, creating and reopening studies: one parent run per study, however many processes start it.

Two processes that start the same new study at once must end up on one parent run. MLflow has no
transaction a client can hold, but it has two operations that only one caller can win: creating an
experiment of a given name, and logging a param a run already has with another value. Each study
has a *lock*: a (deleted, so hidden) experiment named after the study, created with tags naming
the study's parent run and its claim ledger. The ledger is a run of the companion experiment
``<experiment> (hpo ledger)``, so the study's own experiment holds only what users look at: parents,
trials and reports (a study made before keeps its ledger as a ``claims`` child, and resumes on it). A
process that finds no lock creates its parent and ledger, then tries to create the lock; the loser deletes
what it made and uses the winner's (``study_runs.py``). A parent run carries its identity (name, direction,
a digest of its config) in the tags it is created with, so a kill at any point of this leaves either
nothing or a parent that the next run adopts. ``fresh`` studies take the next generation of the lock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from hpo_tune.errors import StudyConflictError
from hpo_tune.space import SearchSpace
from hpo_tune.tracking.common import (
    IDENTITY,
    INTERRUPTED,
    PARAMS_PER_BATCH,
    RETRIED,
    TRIAL,
    now_ms,
    pages,
    proposed_params,
    quote,
    upload,
)
from hpo_tune.tracking.record import MlflowTrialStore
from hpo_tune.tracking.store import connect
from hpo_tune.tracking.study_runs import StudyRuns, StudySpec, default_artifact_location
from hpo_tune.trial import Direction

EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


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
        self.runs = StudyRuns(self.client, uri)

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

    def open_study(self, spec: StudySpec, space: SearchSpace, fresh: bool = False) -> MlflowTrialStore:
        """Create the study's parent run, or reopen it after checking the config is the same.

        ``fresh`` deletes an existing study of that name (parent and trials) and starts anew.
        """
        experiment_id = self.experiment_id(spec.experiment)
        ids = self.runs.ids(experiment_id, spec, fresh)
        self._check_same_config(ids.parent, spec)
        self.client.update_run(ids.parent, status="RUNNING")
        return MlflowTrialStore(self.client, self.uri, experiment_id, ids.parent, ids.claims, space, spec.direction)

    def load_study(self, experiment: str, name: str, space: SearchSpace, direction: Direction) -> MlflowTrialStore:
        """An existing study, for reading back (reports, benchmarks); its runs are left as they are."""
        experiment_id = self.experiment_id(experiment)
        ids = self.runs.existing(experiment_id, name)
        return MlflowTrialStore(self.client, self.uri, experiment_id, ids.parent, ids.claims, space, direction)

    def study_frame(self, experiment: str, name: str) -> tuple[dict[str, Any], pd.DataFrame]:
        """A study for reports: the parent's tags, metrics and times, and one row per trial attempt.

        Trial columns: ``number``, ``status``, ``objective``, ``duration_s``, ``start``, ``end``
        (epoch ms), ``run_id``, ``interrupted`` (the attempt was superseded: it died, was stopped or was
        retried, and another attempt holds its number), then ``param.<name>``, ``metric.<name>`` (last
        value) and ``tag.<name>``.
        """
        experiment_id = self.experiment_id(experiment)
        run_id = self.runs.existing(experiment_id, name).parent
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
