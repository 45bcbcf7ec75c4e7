"""Checks on the composed Hydra config, run before anything is tracked.

Every failure is a ``ConfigError`` naming the dotted key, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.execution import DEVICE, make_executor
from src.pruning import Pruner
from src.space import SearchSpace
from src.strategies import make_strategy
from src.trial import Direction

STUDY_KEYS = ("dataset", "model", "trainer", "objective")  # with seed, space and strategy: what a study is
NOT_STUDY_KEYS = {"dataset": ("download",)}  # settings that do not change results


def validate(cfg: DictConfig) -> SearchSpace:
    """Check every value a study depends on and return the search space it defines.

    ``optimize`` checks ``n_trials`` again for the Python API; checking it here too lets a comparison
    refuse a bad variant before its first study trains.
    """
    _integer(cfg, "seed")
    if cfg.n_trials is not None:
        _integer(cfg, "n_trials", minimum=1)
    _integer(cfg, "trainer.epochs", minimum=0)
    _integer(cfg, "trainer.batch_size", minimum=1)
    if not str(cfg.study).strip():
        raise ConfigError("study", "the study name must not be empty")
    if not DEVICE.match(str(cfg.device)):
        raise ConfigError("device", f"expected auto, cpu, cuda, cuda:N or mps, got {cfg.device!r}")
    try:
        direction = Direction(cfg.objective.direction)
    except ValueError:
        raise ConfigError("objective.direction",
                          f"must be minimize or maximize, got {cfg.objective.direction!r}") from None
    space = SearchSpace.from_config(OmegaConf.to_container(cfg.space, resolve=True))
    for name in space:
        if not _exists(cfg, name):
            raise ConfigError(f"space.{name}", f"there is no config key {name!r} for this parameter to set")
    make_strategy(cfg.strategy.name, space, cfg.seed, direction, options(cfg.strategy))
    make_executor(cfg.executor.name, options(cfg.executor))
    try:
        Pruner(**OmegaConf.to_container(cfg.pruner, resolve=True))
    except TypeError as error:
        raise ConfigError("pruner", str(error)) from None
    _integer(cfg, "max_retries", minimum=0)
    if not isinstance(cfg.retry_failed, bool):
        raise ConfigError("retry_failed", f"must be true or false, got {cfg.retry_failed!r}")
    for key in ("heartbeat.interval_s", "heartbeat.stale_after_s"):
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(key, f"must be a positive number of seconds, got {value!r}")
    if not cfg.heartbeat.stale_after_s > 2 * cfg.heartbeat.interval_s:
        raise ConfigError("heartbeat.stale_after_s", "must exceed twice heartbeat.interval_s")
    return space


def options(node: DictConfig) -> dict[str, Any]:
    """A component's config without its ``name``: the keyword arguments it is built with."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k != "name"}


def study_config(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the config that define a study besides space, strategy and seed."""
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in STUDY_KEYS}
    for key, dropped in NOT_STUDY_KEYS.items():
        for name in dropped:
            config[key].pop(name, None)
    return config


def _exists(cfg: DictConfig, dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node[part]
    return True


def _integer(cfg: DictConfig, key: str, minimum: int | None = None) -> None:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}")
