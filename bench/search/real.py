"""Small real tasks for the search bench (``--real``), at smoke scale on the CPU.

- ``lstm_gold``: seed 000's LSTM on gold (``experiment=seed000_gold scale=smoke``: five choice
  hyperparameters of Table 1, 3 epochs, validation RMSE minimised).
- ``lr_mnist``: seed 001's learning rate on MNIST (``experiment=seed001_mnist scale=smoke``: one
  float, 400 training images, 2 epochs, validation accuracy maximised).

Each trial is one training seeded by (study seed, trial number), as in a tuning study, so its value
is noisy and there is no noise-free function: a picked configuration is scored by its observed value,
and regret is measured against the best value any searcher observed on the task in the same bench run.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from hydra import compose, initialize_config_dir

import hpo_tune.resolvers  # noqa: F401 - registers the resolvers the configs use
from hpo_tune.config import validate
from hpo_tune.resolvers import PROJECT_ROOT
from hpo_tune.space import Params, SearchSpace
from hpo_tune.trial import Direction, TrialContext, trial_seed

TASKS = {"lstm_gold": "seed000_gold", "lr_mnist": "seed001_mnist"}


@functools.cache
def _objective(task: str) -> tuple[Any, SearchSpace, Any]:
    """The composed config, its space and the training objective, built once per process (data loaded once)."""
    from hpo_tune.training.objective import TrainingObjective

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", [f"experiment={TASKS[task]}", "scale=smoke", "progress=false", "threads=1",
                                 "device=cpu"])
    return cfg, validate(cfg), TrainingObjective(cfg)


class RealTask:
    """A smoke-scale training as a bench problem."""

    def __init__(self, name: str):
        self.name = name
        cfg, _, _ = _objective(name)
        self.direction = Direction(cfg.objective.direction)

    def space(self) -> SearchSpace:
        return _objective(self.name)[1]

    def observe(self, params: Params, seed: int, number: int) -> float:
        """The trial's validation metric; NaN (a failed trial, counted in ``failed``) when the training raised."""
        cfg, _, objective = _objective(self.name)
        context = TrialContext(number, trial_seed(seed, number), "cpu",
                               report=lambda epoch, metrics, checkpoint=None: None, log_artifacts=lambda files: None)
        try:
            return float(objective(params, context)[cfg.objective.metric])
        except Exception:  # as in a study, a trial that raises (a diverged training, mostly) fails
            return math.nan

    def truth(self, params: Params, observed: float) -> float:
        return observed
