"""Which runs a study is: its parent and its claim ledger, found, made or adopted, and locked.

Two processes that start the same new study at once must end up on one parent run; the lock (a deleted
experiment only one process can create, see ``studies.py``) names the parent and the ledger that won.
The ledger is a run of the companion experiment ``<experiment> (hpo ledger)``, out of the study's own
experiment; a study made before that keeps its ledger as a ``claims`` child of its parent, and resumes on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from hpo_tune.tracking.common import IDENTITY, ROLE, TRIAL, pages, quote
from hpo_tune.tracking.lineage import code_tags
from hpo_tune.tracking.store import sqlite_path
from hpo_tune.trial import Direction

CLAIMS = "claims"
LEDGER_SUFFIX = " (hpo ledger)"  # the companion experiment of an experiment's studies: their claim ledgers
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


class StudyRuns:
    """Finds and makes the runs of studies in one tracking store."""

    def __init__(self, client: MlflowClient, uri: str):
        self.client, self.uri = client, uri
        self._ledger_experiments: dict[str, str] = {}  # experiment id -> its companion's, once found or made

    def existing(self, experiment_id: str, name: str) -> StudyIds:
        _, lock = self._lock(experiment_id, name)
        if lock is not None and self._active(lock.tags.get("parent")):
            return StudyIds(lock.tags["parent"], lock.tags["claims"])
        parents = self._parents(experiment_id, name)
        if not parents:
            raise LookupError(f"no study {name!r} in experiment {experiment_id!r} at {self.uri}")
        return StudyIds(parents[0], self._ledger(experiment_id, parents[0]) or "")

    def ids(self, experiment_id: str, spec: StudySpec, fresh: bool) -> StudyIds:
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
        claims = claims or self._create_ledger(experiment_id, parent, spec.name)
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
        """The parent's claim ledger: in the companion experiment, or (a study made before it) a child."""
        places = [(self._ledger_experiment(experiment_id), "parent"), (experiment_id, MLFLOW_PARENT_RUN_ID)]
        for place, tag in places:
            runs = self.client.search_runs([place], f"tags.`{tag}` = '{parent}' and tags.`{ROLE}` = '{CLAIMS}'",
                                           order_by=["attributes.start_time ASC"], max_results=1)
            if runs:
                return runs[0].info.run_id
        return None

    def _ledger_experiment(self, experiment_id: str) -> str:
        """The companion experiment that holds the claim ledgers of ``experiment_id``'s studies."""
        if experiment_id not in self._ledger_experiments:
            self._ledger_experiments[experiment_id] = self._find_or_make_ledger_experiment(experiment_id)
        return self._ledger_experiments[experiment_id]

    def _find_or_make_ledger_experiment(self, experiment_id: str) -> str:
        name = self.client.get_experiment(experiment_id).name + LEDGER_SUFFIX
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        note = (f"Claim ledgers of the studies in experiment {name.removesuffix(LEDGER_SUFFIX)!r}: one run per "
                "study, whose params `<number>.<attempt>` name the trial run holding each claim. Each can be "
                "logged once, so however many processes feed a study, each trial runs once. Kept out of the "
                "study's experiment so that its runs and columns are only trials'.")
        try:
            return self.client.create_experiment(name, artifact_location=default_artifact_location(self.uri),
                                                 tags={"mlflow.note.content": note})
        except MlflowException:  # created meanwhile by another process
            return self.client.get_experiment_by_name(name).experiment_id

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
        ledger = self._ledger(experiment_id, parent)
        if ledger is not None:
            self._delete(ledger)
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

    def _create_ledger(self, experiment_id: str, parent: str, name: str) -> str:
        note = ("This study's trial-number claims: param `<number>.<attempt>` = the run that holds it. Each "
                "can be logged once, so however many processes feed the study, each trial runs once.")
        run = self.client.create_run(self._ledger_experiment(experiment_id), run_name=name, tags={
            "parent": parent, ROLE: CLAIMS, "mlflow.note.content": note})
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id
