"""Experiment-tracked hyperparameter optimisation for PyTorch.

``python -m hpo_tune.tune`` is the CLI; ``optimize`` is the same engine as a Python API.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reports read many small artifacts

__all__ = ["StudyResult", "optimize"]


def __getattr__(name: str):
    """Import the engine (and MLflow with it) on first use, so the CLI can reject bad configs fast."""
    if name in __all__:
        from hpo_tune import study

        return getattr(study, name)
    raise AttributeError(f"module 'hpo_tune' has no attribute {name!r}")
