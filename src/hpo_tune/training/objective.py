"""The CLI's objective: train the configured model with one trial's parameters."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from hpo_tune.data import Splits, load_dataset
from hpo_tune.errors import ConfigError
from hpo_tune.models import build_model
from hpo_tune.training.accel import on_device
from hpo_tune.training.kappa import VARIANTS, kappa
from hpo_tune.training.loop import fit, predict
from hpo_tune.training.metrics import TASK_METRICS, confusion_csv
from hpo_tune.trial import TrialContext

DATASET_META_KEYS = ("name", "task", "metric", "direction", "n_features")  # not loader options
KEPT_WEIGHTS = 32  # per-epoch mode: recent candidates' weights kept in memory
READY_METRICS = ("train_seconds", "n_params")  # every model's, beside its task's: wall time of training, parameters

# Per process, not per objective: a worker process receives a fresh copy of the objective with
# every trial, and should load each dataset once, not once per trial.
_DATASETS: dict[str | tuple[str, str], Splits] = {}  # by config, then also by device
_WEIGHTS: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()


def apply_params(cfg: DictConfig, params: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with each dotted parameter name set to its value."""
    tuned = cfg.copy()
    for key, value in params.items():
        OmegaConf.update(tuned, key, value, merge=False)
    return tuned


class TrainingObjective:
    """Built once per study: the data is loaded (and a missing dataset reported) before tracking.

    Datasets are cached per dataset config, so a tuned data setting (e.g. the window length of a
    time series) loads once per value rather than once per trial. A trial tagged with a ``lineage``
    (the per-epoch strategy) trains one epoch from the weights that lineage leads to, instead of a
    whole training from scratch. Classification trials also get ``kappa`` (seed 001, eq. 11/12,
    ``objective.kappa``) and log their validation confusion matrix. Any model offers ``READY_METRICS`` as well, so
    a study of several objectives can weigh accuracy against training time or model size.
    """

    def __init__(self, cfg: DictConfig):
        task = cfg.dataset.task
        if task not in TASK_METRICS:
            raise ConfigError("dataset.task", f"must be one of {sorted(TASK_METRICS)}, got {task!r}")
        offered = (*TASK_METRICS[task], *READY_METRICS)
        if cfg.objective.metric not in offered:
            raise ConfigError("objective.metric", f"{cfg.objective.metric!r} is not one of {offered}")
        wanted = {cfg.objective.metric, *(OmegaConf.select(cfg, "metrics") or ())}
        unknown = sorted(wanted.difference(offered))
        if unknown:
            raise ConfigError("metrics", f"{', '.join(map(repr, unknown))}: not one of {offered}")
        self.ready = [metric for metric in READY_METRICS if metric in wanted]  # returned only when optimised
        if cfg.objective.kappa.variant not in VARIANTS:
            raise ConfigError("objective.kappa.variant", f"must be one of {VARIANTS}")
        if not 0 < cfg.objective.kappa.lam <= 1:
            raise ConfigError("objective.kappa.lam", f"must be in (0, 1], got {cfg.objective.kappa.lam}")
        self.cfg = cfg
        self.data(cfg)

    def split_sizes(self) -> dict[str, int]:
        """Examples per split (training, validation, test), as a study records its dataset."""
        data = self.data(self.cfg)
        return {"training": len(data.y_train), "validation": len(data.y_val),
                "test": 0 if data.y_test is None else len(data.y_test)}

    def setup(self) -> None:
        """Load the dataset into this process before a trial's time limit starts counting (a fresh worker's
        start-up, not the trial's time)."""
        self.data(self.cfg)

    def data(self, cfg: DictConfig, device: str = "cpu") -> Splits:
        """The splits, loaded once per process and kept on ``device`` when they fit there."""
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        key = repr((sorted(dataset.items()), cfg.seed, cfg.paths.data))
        if key not in _DATASETS:
            options = {k: v for k, v in dataset.items() if k not in DATASET_META_KEYS}
            _DATASETS[key] = load_dataset(dataset["name"], root=Path(cfg.paths.data) / dataset["name"],
                                          cache=Path(cfg.paths.cache) / dataset["name"], seed=cfg.seed, **options)
        if device != "cpu" and (key, device) not in _DATASETS:
            _DATASETS[key, device] = on_device(_DATASETS[key], device)
        return _DATASETS[key] if device == "cpu" else _DATASETS[key, device]

    def __call__(self, params: Mapping[str, Any], trial: TrialContext) -> dict[str, float]:
        if self.cfg.threads is not None:  # tiny models train faster on one thread than on contended cores
            torch.set_num_threads(self.cfg.threads)
        cfg = apply_params(self.cfg, params)
        data = self.data(cfg, trial.device)

        def report(epoch: int, metrics: Mapping[str, float], **checkpoint: Any) -> None:
            trial.report(epoch, self.derived(metrics), **checkpoint)

        start = time.perf_counter()
        if "lineage" in trial.tags:
            lineage = json.loads(trial.tags["lineage"])
            model = self._model(cfg, data, self._start(lineage, data, trial.device))
            metrics = self._one_epoch(model, cfg, data, trial.seed, trial.device, int(trial.tags["epoch"]), report)
            self._keep([*lineage, [dict(params), trial.seed]], model)
        else:
            torch.manual_seed(trial.seed)
            model = self._model(cfg, data)
            trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
            metrics = fit(model, data, device=trial.device, seed=trial.seed, report=report, resume=trial.restore(),
                          **trainer)
        seconds, weights = time.perf_counter() - start, sum(p.numel() for p in model.parameters())
        ready = {"train_seconds": seconds, "n_params": float(weights)}
        trial.keep_model(model, data.x_val[:2])  # the study logs it if it keeps this trial's model
        if data.num_classes is not None:
            predicted = predict(model, data.x_val, trial.device).argmax(dim=1)
            trial.log_artifacts({"confusion_matrix.csv": confusion_csv(data.y_val.cpu().numpy(), predicted.numpy(),
                                                                        data.num_classes)})
        return {**self.derived(metrics), **{metric: ready[metric] for metric in self.ready}}

    def derived(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """``metrics`` plus kappa for each split that has an accuracy and a loss."""
        extra = {f"{split}_kappa": kappa(metrics[f"{split}_accuracy"], metrics[f"{split}_loss"],
                                         self.cfg.objective.kappa.variant, self.cfg.objective.kappa.lam)
                 for split in ("val", "test") if f"{split}_accuracy" in metrics and f"{split}_loss" in metrics}
        return {**metrics, **extra}

    def _model(self, cfg: DictConfig, data: Splits, weights: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        model = build_model(OmegaConf.to_container(cfg.model, resolve=True), data.input_shape, data.num_outputs)
        if weights is not None:
            model.load_state_dict(weights)
        return model

    def _start(self, lineage: list, data: Splits, device: str) -> dict[str, torch.Tensor]:
        """The weights a lineage leads to: from memory, or re-trained from the initial weights."""
        key = json.dumps(lineage)
        if key not in _WEIGHTS:
            if lineage:
                *before, (params, seed) = lineage
                cfg = apply_params(self.cfg, params)
                model = self._model(cfg, data, self._start(before, data, device))
                self._one_epoch(model, cfg, data, seed, device, len(lineage), None)
            else:
                torch.manual_seed(self.cfg.seed)  # every lineage starts from the same initial weights
                model = self._model(self.cfg, data)
            self._keep(lineage, model)
        return _WEIGHTS[key]

    def _keep(self, lineage: list, model: nn.Module) -> None:
        _WEIGHTS[json.dumps(lineage)] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        while len(_WEIGHTS) > KEPT_WEIGHTS:
            _WEIGHTS.popitem(last=False)

    def _one_epoch(self, model: nn.Module, cfg: DictConfig, data: Splits, seed: int, device: str, epoch: int,
                   report: Callable[[int, Mapping[str, float]], None] | None) -> dict[str, float]:
        trainer = {**OmegaConf.to_container(cfg.trainer, resolve=True), "epochs": 1}
        return fit(model, data, device=device, seed=seed, report=report, first_epoch=epoch, **trainer)
