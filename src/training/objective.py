"""The CLI's objective: train the configured model with one trial's parameters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.data import Splits, load_dataset
from src.errors import ConfigError
from src.models import build_model
from src.training.loop import fit
from src.training.metrics import TASK_METRICS
from src.trial import TrialContext

DATASET_META_KEYS = ("name", "task", "metric", "direction", "n_features")  # not loader options


def apply_params(cfg: DictConfig, params: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with each dotted parameter name set to its value."""
    tuned = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(tuned, key, value, merge=False)
    return tuned


class TrainingObjective:
    """Built once per study: the data is loaded (and a missing dataset reported) before tracking.

    Datasets are cached per dataset config, so a tuned data setting (e.g. the window length of a
    time series) loads once per value rather than once per trial.
    """

    def __init__(self, cfg: DictConfig):
        task = cfg.dataset.task
        if task not in TASK_METRICS:
            raise ConfigError("dataset.task", f"must be one of {sorted(TASK_METRICS)}, got {task!r}")
        if cfg.objective.metric not in TASK_METRICS[task]:
            raise ConfigError("objective.metric", f"{cfg.objective.metric!r} is not one of {TASK_METRICS[task]}")
        self.cfg = cfg
        if cfg.threads is not None:  # tiny models train faster on one thread than on contended cores
            torch.set_num_threads(cfg.threads)
        self._data: dict[str, Splits] = {}
        self.data(cfg)

    def data(self, cfg: DictConfig) -> Splits:
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        key = repr(sorted(dataset.items()))
        if key not in self._data:
            options = {k: v for k, v in dataset.items() if k not in DATASET_META_KEYS}
            self._data[key] = load_dataset(dataset["name"], root=Path(cfg.paths.data) / dataset["name"],
                                           cache=Path(cfg.paths.cache) / dataset["name"], seed=cfg.seed, **options)
        return self._data[key]

    def __call__(self, params: Mapping[str, Any], trial: TrialContext) -> dict[str, float]:
        cfg = apply_params(self.cfg, params)
        data = self.data(cfg)
        torch.manual_seed(trial.seed)
        model = build_model(OmegaConf.to_container(cfg.model, resolve=True), data.input_shape, data.num_outputs)
        trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
        return fit(model, data, device=trial.device, seed=trial.seed, report=trial.report, **trainer)
