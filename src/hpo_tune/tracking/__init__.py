"""The only package that talks to MLflow.

A study is a parent run; each trial is a nested child run (standard ``mlflow.parentRunId`` tag).
Everything a strategy needs is stored there, so the history read back from MLflow is the study's
state: re-running a killed study's command reopens its parent run and carries on, and any number
of processes (on any hosts) can feed one study.

Layout of what is written:

- parent: tags ``study``, ``strategy``, ``direction``, ``metric``, ``identity`` (a digest of the
  study-defining config), set when the run is created, and whatever the caller adds (``dataset``,
  ``model``); params = the flattened study-defining config, which is also how a resumed study is
  checked to be the same study; artifact ``config.yaml``; metrics ``best_objective``,
  ``n_complete``, ``n_failed``, ``n_pruned``; tags ``best_run_id`` and ``best.<param>``.
- claim ledger: a run named after the study in the companion experiment ``<experiment> (hpo ledger)``
  (tags ``hpo.role=claims``, ``parent``) whose params ``<number>.<attempt>`` name the run
  that holds each trial attempt (``record.py``), out of the study's experiment: its UI shows only the
  parent, the trials and report runs, and no column that is not theirs. Studies made before the
  companion experiment keep their ledger as a child named ``claims``, and resume on it.
- lock: a deleted experiment whose name is derived from the study's, tagged with the parent and
  ledger run ids, so that one parent exists per study (``studies.py``).
- child: tags ``trial`` (number), ``attempt``, ``proposed`` (its parameters as JSON, from its creation),
  ``claimed`` (from its first write after the claim), ``device``, ``host``/``pid``/``pid_start``
  (the owning driver), ``record`` (the driver's store object, which reads back only others' runs),
  ``worker`` (host:pid of the process that ran it), ``heartbeat`` (epoch ms, refreshed while it runs),
  ``strategy.<key>`` (what the strategy attached to its proposal), ``error`` when it failed,
  ``interrupted`` when it died or was stopped (it runs again),
  ``worker_died`` when its worker process died under it (counts towards ``max_retries``),
  ``retried`` when ``retry_failed`` sent it round again; params = the trial's parameters (logged with
  its first write: the epoch's metrics or its end); metrics
  per epoch (``step`` = epoch), then ``objective`` and ``duration_s``.
  Status: RUNNING, FINISHED, FAILED, KILLED (pruned).
"""

from importlib import import_module
from typing import Any

_HOMES = {"MlflowTrialStore": "record", "check": "store", "connect": "store", "StudySpec": "studies",
          "Tracker": "studies", "default_artifact_location": "studies", "flatten": "studies", "Heartbeat": "trial_run",
          "TrialRecorder": "trial_run", "TrialSink": "trial_run"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import MLflow on first use, so that checking a store's URI (``check``) answers in a moment."""
    if name in _HOMES:
        return getattr(import_module(f"hpo_tune.tracking.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'hpo_tune.tracking' has no attribute {name!r}")
