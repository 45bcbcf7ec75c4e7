"""Checks on the composed Hydra config, run before anything is tracked.

Every failure is a ``ConfigError`` naming the dotted key, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import ast
import difflib
import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.execution import DEVICE, make_executor
from src.pruning import Pruner
from src.resolvers import PROJECT_ROOT
from src.space import SearchSpace
from src.strategies import make_strategy
from src.trial import Direction

STUDY_KEYS = ("dataset", "model", "trainer", "objective")  # with seed, space and strategy: what a study is
NOT_STUDY_KEYS = {"dataset": ("download",)}  # settings that do not change results
# Parameters of the code that reads a group which its caller fills itself, not from the group's keys:
# TrainingObjective calls fit(model, data, device=, seed=, report=, [first_epoch=,] **trainer),
# build_model calls Architecture(input_shape=, num_outputs=, **model) and load_dataset calls
# loader(root=, cache=, seed=, **dataset).
CALLER_FILLED = {"trainer": {"model", "data", "device", "seed", "report", "first_epoch"},
                 "model": {"self", "input_shape", "num_outputs"}, "dataset": {"root", "cache", "seed"}}


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
    _read_keys_only(cfg)
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
    strategy = make_strategy(cfg.strategy.name, space, cfg.seed, direction, options(cfg.strategy))
    if cfg.n_trials is not None:
        strategy.fit_budget(cfg.n_trials)
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


def accepted_keys(cfg: DictConfig) -> dict[str, set[str]]:
    """The keys the training code reads from ``trainer``, ``model`` and ``dataset`` under this config.

    Derived from the signatures of what reads them (``fit``, the ``model.arch``'s class, the
    ``dataset.name``'s loader), so a new option is accepted as soon as it exists. The signatures are
    read from the source rather than imported, because those modules import torch and a config
    mistake should come back in seconds.
    """
    meta_keys = _literal("src.training.objective", "DATASET_META_KEYS")
    readers = {"trainer": (set(), ("src.training.loop", "fit")),
               "model": ({"name", "arch"}, _entry("src.models", "ARCHITECTURES", cfg, "model.arch")),
               "dataset": (set(meta_keys), _entry("src.data", "LOADERS", cfg, "dataset.name"))}
    return {group: own | (_parameters(*reader) - CALLER_FILLED[group]) for group, (own, reader) in readers.items()}


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


def _entry(module: str, mapping: str, cfg: DictConfig, key: str) -> tuple[str, str]:
    """Where the function or class that ``mapping`` (a dict literal in ``module``) gives for ``cfg``'s ``key`` is."""
    where, node = _definition(module, mapping)
    entries = {k.value: v.id for k, v in zip(node.keys, node.values)}
    value = OmegaConf.select(cfg, key)
    if value not in entries:
        raise ConfigError(key, f"{value!r} is not one of {sorted(entries)}")
    return where, entries[value]


def _parameters(module: str, name: str) -> set[str]:
    """The parameter names of function ``name`` (or class ``name``'s ``__init__``) in ``module``."""
    _, node = _definition(module, name)
    if isinstance(node, ast.ClassDef):
        node = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = node.args
    return {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}


def _literal(module: str, name: str) -> Any:
    return ast.literal_eval(_definition(module, name)[1])


def _definition(module: str, name: str) -> tuple[str, ast.AST]:
    """The module that defines ``name`` (following ``from ... import``) and its definition or assigned value."""
    for node in _source(module).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return module, node.value
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _definition(node.module, alias.name)
    raise LookupError(f"{name} is not defined in {module}")


@functools.cache
def _source(module: str) -> ast.Module:
    path = PROJECT_ROOT.joinpath(*module.split("."))
    return ast.parse((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text())


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
