"""CLI: ``python -m src.tune strategy=<name> dataset=<name> model=<name> [key=value ...]``, in a checkout.

Hydra composes the config from ``conf/``; this module checks it (``hpo_tune.config.study_config``),
builds the training objective and hands both to ``run_study``. Config mistakes (an unknown option,
a bad value) print one line naming the key and exit with code 2 before anything is tracked; a
missing dataset exits 1.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from hpo_tune.cli import cli_errors
from hpo_tune.errors import NoTrialCompletedError
from hpo_tune.resolvers import PROJECT_ROOT  # importing it registers the resolvers the configs use

if TYPE_CHECKING:
    from hpo_tune.study import StudyResult
    from hpo_tune.tracking import Tracker


def run(cfg: DictConfig) -> StudyResult:
    """Tune the configured model; shared by the CLI and by tests that compose configs directly."""
    # Imported here, not at the top, and the config checked before MLflow loads, so that a config
    # mistake comes back in a few seconds.
    from hpo_tune.config import study_config

    config = study_config(cfg)  # a store this process cannot use fails here too

    from hpo_tune.execution import resolve_device

    if cfg.device not in ("auto", "cpu"):
        resolve_device(cfg.device)  # a GPU this machine lacks fails here, before the data loads

    from hpo_tune.study import run_study
    from hpo_tune.tracking import Tracker
    from hpo_tune.tracking.lineage import data_version
    from hpo_tune.training.objective import TrainingObjective

    objective = TrainingObjective(cfg)
    data = data_version(cfg.dataset.name, Path(cfg.paths.data) / cfg.dataset.name, objective.split_sizes())
    result = run_study(objective, config, data)
    if result.best is not None and cfg.dataset.task == "classification":
        attach_confusion_matrix(Tracker(cfg.tracking.uri), result)
    summary = {
        "study": cfg.study,
        "parent_run_id": result.parent_run_id,
        "metric": cfg.objective.metric,
        "best_objective": result.best.value if result.best else None,
        "best_params": result.best.params if result.best else None,
        "best_run_id": result.best.run_id if result.best else None,
        "n_trials": len(result.trials),
        "n_failed": sum(t.state.value == "failed" for t in result.trials),
        **({"metrics": list(config.metrics), "pareto": [{"trial": t.number, "values": list(t.values),
                                                          "params": t.params, "run_id": t.run_id}
                                                         for t in result.pareto]} if result.pareto else {}),
    }
    print(json.dumps(summary, indent=2))
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps(summary, indent=2) + "\n")
    if result.best is None and not result.pareto:
        raise NoTrialCompletedError(no_trial_completed(cfg.study, result))
    return result


def no_trial_completed(study: str, result: StudyResult) -> str:
    """One line: how many trials ran, and the error that ended most of them."""
    line = f"no trial of study {study!r} completed ({len(result.trials)} ran)"
    if result.errors:
        error, count = next(iter(result.errors.items()))
        line += f"; the commonest error ({count} of {sum(result.errors.values())} failed): {error}"
    return line


def attach_confusion_matrix(tracker: Tracker, result: StudyResult) -> None:
    """Put the best trial's validation confusion matrix on the study's parent run, as CSV and heatmap."""
    import numpy as np
    import pandas as pd

    from hpo_tune.plots import confusion_heatmap

    text = tracker.read_text(result.best.run_id, "confusion_matrix.csv")
    if text is None:
        return
    matrix = pd.read_csv(io.StringIO(text), index_col=0)
    image = confusion_heatmap(matrix.to_numpy(dtype=np.int64), list(matrix.columns),
                              f"best trial {result.best.number}: validation confusion matrix")
    tracker.attach(result.parent_run_id, {"confusion_matrix.csv": text, "confusion_matrix.png": image})


@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    with cli_errors():  # inside the job too: Hydra prints its own banner for errors that leave it
        run(cfg)


def main() -> None:
    """Entry point: config mistakes, Hydra's included, become one line and exit 2 (see ``hpo_tune.cli``)."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let Hydra raise, so its errors can be shortened
    with cli_errors():
        _hydra_main()


if __name__ == "__main__":
    main()
