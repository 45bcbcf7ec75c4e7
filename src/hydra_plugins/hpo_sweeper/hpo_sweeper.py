"""The Hydra sweeper ``hpo``: ``python train.py --multirun hydra/sweeper=hpo hydra.sweeper.strategy=gamma_bo ...``.

Hydra imports every module of ``hydra_plugins`` at start-up in every app, so this one stays light: its config
(``HpoSweeperConf``, registered as ``hydra/sweeper=hpo``) and a class that hands the sweep to
``hpo_tune.sweeper.run_sweep``, imported only when a sweep starts.

Hydra refuses a sweep as the value of a ``hydra.*`` key on the command line ("Sweeping over Hydra's
configuration is not supported"), so ``'hydra.sweeper.params.lr=interval(0, 1)'`` would not reach any sweeper.
This module has Hydra read a value under ``hydra.sweeper.params`` as the text it is, quoted, and add the key
(Hydra's config is a struct), exactly as if it were written in the app's YAML; a key under
``hydra.sweeper.strategy_options`` or ``hydra.sweeper.when`` is added the same way; every other override parses as
before.
"""


import functools
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

PARAMS = "hydra.sweeper.params."
# keys the user adds, not the sweeper's config
OPEN_MAPPINGS = (PARAMS, "hydra.sweeper.strategy_options.", "hydra.sweeper.when.")


@dataclass
class ExecutorConf:
    """Where trials run, as the CLI's ``executor`` group: ``inline`` (one at a time), ``process`` or ``ray``
    (``n_workers`` at once, a freed slot refilled at once). An option left null takes the executor's default."""

    name: str = "inline"
    n_workers: Any = None
    trial_timeout: Any = None
    kill_grace_s: Any = None
    address: Any = None
    num_cpus: Any = None
    num_gpus: Any = None


@dataclass
class PrunerConf:
    """As the CLI's ``pruner`` group (``none``, ``median``, ``t_test``, ``asha``, ``hyperband``); an option left null
    takes the pruner's default. The task reports its curve through ``hpo_tune.current_trial().report``."""

    name: str = "none"
    warmup: Any = None
    min_trials: Any = None
    alpha: Any = None
    min_resource: Any = None
    max_resource: Any = None
    reduction_factor: Any = None
    mode: Any = None


@dataclass
class HpoSweeperConf:
    """``hydra.sweeper.*``: each field is the ``hpo_tune.optimize`` argument of that name, except ``params`` (the
    space, in Hydra's override grammar), ``when`` (its conditions: parameter -> ``{parent: value(s)}``), ``executor``
    and ``pruner``. ``study`` and
    ``experiment`` default to the app's job name; a relative ``tracking_uri`` is taken from where the command
    runs."""

    _target_: str = "hydra_plugins.hpo_sweeper.hpo_sweeper.HpoSweeper"
    strategy: str = "random"
    n_trials: Any = None
    direction: str = "minimize"
    metric: Any = None
    directions: Any = None  # several objectives, with as many metrics: directions=[maximize,minimize]
    metrics: Any = None
    study: Any = None
    experiment: Any = None
    tracking_uri: str = "sqlite:///mlflow.db"
    seed: Any = 0
    max_retries: Any = 2
    checkpoint_every: Any = 0
    enqueue: Any = None
    importance: str = "ped_anova"  # at the study's end: ped_anova, fanova or none
    warm_start: Any = None
    warm_start_values: str = "quantile"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    params: Any = None
    when: dict[str, Any] = field(default_factory=dict)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    executor: ExecutorConf = field(default_factory=ExecutorConf)
    device: str = "cpu"
    progress: bool = True


ConfigStore.instance().store(group="hydra/sweeper", name="hpo", node=HpoSweeperConf, provider="hpo_tune")


class HpoSweeper(Sweeper):
    """Runs a study of the app's task: one trial per job, proposed when a slot frees (``hpo_tune.sweeper``)."""

    def __init__(self, **settings: Any):
        self.settings = {key: OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
                         for key, value in settings.items()}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> Any:
        from hpo_tune.sweeper import run_sweep

        return run_sweep(self.settings, self.hydra_context, self.task_function, self.config, arguments)


def _params_as_text(parse_overrides: Any) -> Any:
    @functools.wraps(parse_overrides)
    def parse(self: OverridesParser, overrides: list[str]) -> list[Any]:
        return parse_overrides(self, [_as_text(line) for line in overrides])

    return parse


def _as_text(line: str) -> str:
    """``hydra.sweeper.params.<key>=<value>`` as ``++hydra.sweeper.params.<key>='<value>'``: the value is the
    sweeper's to parse (a mistake in it is then one line naming the key), and the key is added whether or not the
    config has it (Hydra's config is a struct). ``hydra.sweeper.strategy_options.<key>`` and
    ``hydra.sweeper.when.<key>`` are added the same way, their values parsed as usual."""
    key, equals, value = line.partition("=")
    if not equals or not key.lstrip("+").startswith(OPEN_MAPPINGS):
        return line
    if key.lstrip("+").startswith(PARAMS) and not (len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""):
        value = "'{}'".format(value.replace("\\", "\\\\").replace("'", "\\'"))
    return f"++{key.lstrip('+')}={value}"


if not hasattr(OverridesParser.parse_overrides, "__wrapped__"):
    OverridesParser.parse_overrides = _params_as_text(OverridesParser.parse_overrides)
