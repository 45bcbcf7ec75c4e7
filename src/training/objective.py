"""The CLI's objective: train the configured model with one trial's parameters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.data import load_dataset
from src.errors import ConfigError
from src.models import build_model
from src.training.loop import fit
from src.training.metrics import CLASSIFICATION_METRICS
from src.trial import TrialContext

DATASET_META_KEYS = ("name", "metric", "direction")


def apply_params(cfg: DictConfig, params: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with each dotted parameter name set to its value."""
    tuned = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(tuned, key, value, merge=False)
    return tuned


class TrainingObjective:
    """Built once per study, so the dataset is loaded (and a missing one reported) before tracking."""

    def __init__(self, cfg: DictConfig):
        if cfg.objective.metric not in CLASSIFICATION_METRICS:
            raise ConfigError("objective.metric", f"{cfg.objective.metric!r} is not one of {CLASSIFICATION_METRICS}")
        self.cfg = cfg
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        options = {k: v for k, v in dataset.items() if k not in DATASET_META_KEYS}
        self.data = load_dataset(dataset["name"], root=Path(cfg.paths.data) / dataset["name"],
                                 cache=Path(cfg.paths.cache) / dataset["name"], seed=cfg.seed, **options)

    def __call__(self, params: Mapping[str, Any], trial: TrialContext) -> dict[str, float]:
        cfg = apply_params(self.cfg, params)
        torch.manual_seed(trial.seed)
        model = build_model(OmegaConf.to_container(cfg.model, resolve=True), self.data.input_shape,
                            self.data.num_outputs)
        trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
        return fit(model, self.data, device=trial.device, seed=trial.seed, report=trial.report, **trainer)
