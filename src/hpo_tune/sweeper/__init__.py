"""Tuning any Hydra app: what the sweeper ``hydra/sweeper=hpo`` (``hydra_plugins.hpo_sweeper``) runs.

``run_sweep`` turns ``hydra.sweeper.*`` into a study (``hpo_tune.study.run_study``) whose objective is the
app's task (``task.HydraTask``): the same driver, store, strategies, pruners and executors as the CLI, so a
re-run resumes, several processes share a study, and a slot is refilled as soon as its trial ends. A task
returns a number, or a mapping holding ``hydra.sweeper.metric``; it finds its trial (number, seed,
``report``) with ``hpo_tune.current_trial()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hpo_tune.cli import cli_errors, hydra_message
from hpo_tune.errors import ConfigError

if TYPE_CHECKING:
    from hpo_tune.study_config import StudyConfig
    from hpo_tune.sweeper.task import HydraTask

_log = logging.getLogger(__name__)
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SWEEPER_KEYS = {"strategy.name": "strategy"}  # the engine's key -> hydra.sweeper's, where they differ
EXECUTOR_HINT = "hydra.sweeper.executor.name=process hydra.sweeper.executor.n_workers=4"


def run_sweep(settings: Mapping[str, Any], hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig, arguments: Sequence[str]) -> Any:
    """Run (or resume) the study ``settings`` describe on ``task_function``; a mistake in them is one line
    naming its ``hydra.sweeper`` key, exit 2, before anything is tracked; Ctrl-C marks the running trial
    interrupted and exits 130."""
    with cli_errors(), _sweeper_keys():
        study_config, task = _study(settings, hydra_context, task_function, config, arguments)
        from hpo_tune.study import run_study

        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        result = run_study(task, study_config)
    best = result.best
    _log.info(f"study {study_config.study!r}: {len(result.trials)} trials; " + (
        f"best trial {best.number}: {study_config.metric or 'objective'}={best.value:.6g} {best.params} (run "
        f"{best.run_id})" if best else f"{len(result.pareto)} on the Pareto front" if result.pareto else
        "none completed"))
    return result


def _study(settings: Mapping[str, Any], hydra_context: HydraContext, task_function: TaskFunction,
           config: DictConfig, arguments: Sequence[str]) -> tuple[StudyConfig, HydraTask]:
    from hpo_tune.execution import make_executor
    from hpo_tune.study_config import StudyConfig
    from hpo_tune.sweeper.space import sweep_space
    from hpo_tune.sweeper.task import HydraTask

    launcher = OmegaConf.select(config, "hydra.launcher._target_")
    if launcher != BASIC_LAUNCHER:
        raise ConfigError("executor", f"hydra/launcher is {launcher}: the hpo sweeper runs each trial as soon as "
                                      f"a slot frees through its own executors; drop hydra/launcher and use "
                                      f"{EXECUTOR_HINT}")
    options = dict(settings)
    sweep = sweep_space(options.pop("params", None), arguments, options.pop("when", None))
    rng = np.random.default_rng(0)
    example = {name: dim.sample(rng) for name, dim in sweep.space.items()}  # every key, inactive ones too
    try:  # a key the app lacks fails here, not in every trial
        hydra_context.config_loader.load_sweep_config(config, sweep.overrides(example))
    except ConfigCompositionException as error:
        raise ConfigError("params", hydra_message(error)) from None
    executor, pruner = (_given(options.pop(key, None)) for key in ("executor", "pruner"))
    uri = absolute_uri(str(options.pop("tracking_uri")))
    job = str(config.hydra.job.name)
    options["study"] = options.get("study") or job
    options["experiment"] = options.get("experiment") or job
    study_config = StudyConfig(
        space=sweep.space, tracking_uri=uri, executor=make_executor(str(executor.pop("name", "inline")), executor),
        config={"app": job, "overrides": list(sweep.fixed)}, config_text=_task_yaml(config),
        tags={"hydra.app": job}, pruner=pruner, **options)
    return study_config, HydraTask(hydra_context, task_function, config, sweep, uri)


def _given(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options set (not null): the others keep the executor's or the pruner's defaults."""
    return {key: value for key, value in (options or {}).items() if value is not None}


def absolute_uri(uri: str) -> str:
    """A local store's path made absolute from where the command runs: a job may run in its own folder."""
    scheme, separator, path = uri.partition(":///")
    if scheme == "sqlite" and separator and not path.startswith("/"):
        return f"sqlite:///{Path(path).resolve()}"
    if "://" not in uri and ":" not in uri.split("/")[0]:  # a plain folder: MLflow's file store
        return Path(uri).resolve().as_uri()
    return uri


def _task_yaml(config: DictConfig) -> str:
    """The app's config without Hydra's own node, recorded on the study's parent run."""
    task = config.copy()
    with open_dict(task):
        task.pop("hydra", None)
    return OmegaConf.to_yaml(task)


@contextmanager
def _sweeper_keys() -> Iterator[None]:
    """A ``ConfigError`` names the ``hydra.sweeper`` key the user typed, not the engine's argument."""
    try:
        yield
    except ConfigError as error:
        key = SWEEPER_KEYS.get(error.key, error.key)
        if key.startswith("strategy."):  # an option of the strategy
            key = "strategy_options." + key.removeprefix("strategy.")
        raise ConfigError(f"hydra.sweeper.{key}", str(error).partition(": ")[2]) from None
