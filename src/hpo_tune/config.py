"""The study a composed Hydra config describes, checked before anything is tracked.

Every failure is a ``ConfigError`` naming the dotted key, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hpo_tune.errors import ConfigError
from hpo_tune.execution import make_executor
from hpo_tune.space import SearchSpace
from hpo_tune.study_config import StudyConfig, integer
from hpo_tune.tracking import check

STUDY_KEYS = ("dataset", "model", "trainer", "objective")  # with seed, space and strategy: what a study is
NOT_STUDY_KEYS = {"dataset": ("download",)}  # settings that do not change results
# The StudyConfig fields a Hydra config sets as they are, and the keys they are read from (and named by in errors).
HYDRA_KEYS = {"strategy": "strategy.name", "n_trials": "n_trials", "direction": "objective.direction",
              "metric": "objective.metric", "seed": "seed", "study": "study", "tracking_uri": "tracking.uri",
              "experiment": "tracking.experiment", "device": "device", "progress": "progress", "fresh": "fresh",
              "max_retries": "max_retries", "retry_failed": "retry_failed", "checkpoint_every": "checkpoint_every",
              "heartbeat_interval_s": "heartbeat.interval_s", "stale_after_s": "heartbeat.stale_after_s",
              "log_models": "tracking.log_models", "system_metrics": "tracking.system_metrics",
              "warm_start": "warm_start", "warm_start_values": "warm_start_values",
              "importance": "importance", "directions": "directions",
              "metrics": "metrics"}
# Parameters of the code that reads a group which its caller fills itself, not from the group's keys:
# TrainingObjective calls fit(model, data, device=, seed=, report=, resume=, [first_epoch=,] **trainer),
# build_model calls Architecture(input_shape=, num_outputs=, **model) and load_dataset calls
# loader(root=, cache=, seed=, **dataset).
CALLER_FILLED = {"trainer": {"model", "data", "device", "seed", "report", "first_epoch", "resume"},
                 "model": {"input_shape", "num_outputs"}, "dataset": {"root", "cache", "seed"}}


def study_config(cfg: DictConfig) -> StudyConfig:
    """The study ``cfg`` describes, checked once: here what only a Hydra config has (the training settings, the
    keys the space tunes), the rest by building the ``StudyConfig``, whose errors are named by their Hydra keys.

    The tracking store is checked too (``hpo_tune.tracking.check``: loads no MLflow, creates nothing). The keys
    nothing reads are looked for last: that needs the training code's signatures, and so torch (about 4 s),
    while every other mistake comes back in about 2 s.
    """
    for key, minimum in (("trainer.epochs", 0), ("trainer.batch_size", 1)):
        integer(key, OmegaConf.select(cfg, key), minimum)
    space = SearchSpace.from_config(OmegaConf.to_container(cfg.space, resolve=True))
    for name in space:
        if not _exists(cfg, name):
            raise ConfigError(f"space.{name}", f"there is no config key {name!r} for this parameter to set")
    try:
        config = StudyConfig(
            space, **{name: OmegaConf.select(cfg, key) for name, key in HYDRA_KEYS.items()},
            strategy_options=options(cfg.strategy), executor=make_executor(cfg.executor.name, options(cfg.executor)),
            config=_identity(cfg), config_text=OmegaConf.to_yaml(cfg, resolve=True),
            tags={"dataset": cfg.dataset.name, "model": cfg.model.name},
            pruner=OmegaConf.to_container(cfg.pruner, resolve=True), enqueue=_plain(cfg, "enqueue"))
    except ConfigError as error:
        if HYDRA_KEYS.get(error.key, error.key) == error.key:
            raise
        raise ConfigError(HYDRA_KEYS[error.key], str(error).removeprefix(f"{error.key}: ")) from None
    check(config.tracking_uri)
    _read_keys_only(cfg)
    return config


def validate(cfg: DictConfig) -> SearchSpace:
    """Check ``cfg`` as ``study_config`` does and return its search space: for callers that only check (a
    comparison checks every variant before its first study trains)."""
    return study_config(cfg).space


def options(node: DictConfig) -> dict[str, Any]:
    """A component's config without its ``name``: the keyword arguments it is built with."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "name"}


def _plain(cfg: DictConfig, key: str) -> Any:
    """The value at ``key`` as plain lists and dicts (None if absent)."""
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _identity(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the config that define a study besides space, strategy and seed."""
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in STUDY_KEYS}
    for key, dropped in NOT_STUDY_KEYS.items():
        for name in dropped:
            config[key].pop(name, None)
    return config


def accepted_keys(cfg: DictConfig) -> dict[str, set[str]]:
    """The keys the training code reads from ``trainer``, ``model`` and ``dataset`` under this config.

    They are the parameters of what reads them (``fit``, the ``model.arch``'s class, the ``dataset.name``'s
    loader), so a new option is accepted as soon as it exists. Reading the signatures imports the training
    code and torch, which a study loads next anyway.
    """
    from hpo_tune.data import LOADERS
    from hpo_tune.models import ARCHITECTURES
    from hpo_tune.training.loop import fit
    from hpo_tune.training.objective import DATASET_META_KEYS

    readers = {"trainer": (set(), fit),
               "model": ({"name", "arch"}, _entry(ARCHITECTURES, cfg, "model.arch")),
               "dataset": (set(DATASET_META_KEYS), _entry(LOADERS, cfg, "dataset.name"))}
    return {group: own | (set(inspect.signature(reader).parameters) - CALLER_FILLED[group])
            for group, (own, reader) in readers.items()}


def _read_keys_only(cfg: DictConfig) -> None:
    """A key nothing reads (``+trainer.epoch=2`` meant as ``trainer.epochs``) would fail every trial, or the
    dataset's load, with a TypeError once the study is tracked; refuse it now, with the likely key."""
    for group, accepted in accepted_keys(cfg).items():
        for key in cfg[group]:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                settings = ", ".join(sorted(accepted))
                hint = f"did you mean {group}.{close[0]}?" if close else f"{group}'s settings: {settings}"
                raise ConfigError(f"{group}.{key}", f"no such setting ({hint})")


def _entry(registry: dict[str, Any], cfg: DictConfig, key: str) -> Any:
    """What ``registry`` holds for ``cfg``'s ``key`` (an architecture, a loader)."""
    value = OmegaConf.select(cfg, key)
    if value not in registry:
        raise ConfigError(key, f"{value!r} is not one of {sorted(registry)}")
    return registry[value]


def _exists(cfg: DictConfig, dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node[part]
    return True
