"""Experiment-tracked hyperparameter optimisation for PyTorch.

``python -m src.tune`` is the CLI (in a checkout); ``optimize`` is the same engine as a Python API, and
``hydra/sweeper=hpo`` runs it on any Hydra app, whose task finds its trial with ``current_trial()``.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reports read many small artifacts

from hpo_tune.trial import TrialPruned, current_trial

__all__ = ["StudyResult", "TrialPruned", "current_trial", "optimize"]
_ENGINE = ("StudyResult", "optimize")


def __getattr__(name: str):
    """Import the engine (and MLflow with it) on first use, so the CLI can reject bad configs fast."""
    if name in _ENGINE:
        from hpo_tune import study

        return getattr(study, name)
    raise AttributeError(f"module 'hpo_tune' has no attribute {name!r}")
