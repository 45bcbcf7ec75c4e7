"""One study's configuration, checked once.

``StudyConfig`` holds what a study runs with besides its objective: the search space and the
settings ``optimize`` takes. The Python API builds one from ``optimize``'s arguments, the CLI from
the composed Hydra config (``hpo_tune.config.study_config``). Building it is the check: every value is
validated there, and the strategy (its plan fitted to the budget), the executor and the pruner are
built there, so a mistake is a ``ConfigError`` naming its key before anything is tracked, and the
study runs the very objects that were checked. Importing this module loads neither MLflow nor torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.execution import DEVICE, LOG_MODELS, Executor, make_executor
from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import BOHB, Strategy, make_strategy
from hpo_tune.strategies.fidelity import BAYES, RungFitted
from hpo_tune.strategies.prior import HISTORY_ALONE, WARM_VALUES, check_enqueued
from hpo_tune.trial import Direction

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
IMPORTANCE = ("ped_anova", "fanova", "none")  # evaluators of hpo_tune.importance run as a study ends; none: off


@dataclass(frozen=True)
class StudyConfig:
    """A study's settings, validated when built; each field is the ``optimize`` argument of that name.

    The checks build the rest: ``goal`` (the direction; with several objectives the first), ``goals`` (every
    objective's direction: one, or those of ``directions``), ``search`` (the strategy, fitted to ``n_trials``),
    ``runner`` (the executor), ``stopper`` (the pruner) and ``budget`` (``n_trials``, or without one the
    trials the strategy needs). The strategy and the executor are live objects: one study at a time runs them.
    """

    space: SearchSpace
    strategy: str = "random"
    n_trials: int | None = None
    direction: str = "minimize"
    metric: str | None = None
    seed: int = 0
    study: str | None = None
    tracking_uri: str = DEFAULT_TRACKING_URI
    experiment: str = "hpo"
    strategy_options: Mapping[str, Any] | None = None
    executor: str | Executor = "inline"
    device: str = "cpu"
    config: Mapping[str, Any] | None = None
    config_text: str = ""
    tags: Mapping[str, str] | None = None
    progress: bool = True
    poll_interval_s: float = 2.0
    fresh: bool = False
    pruner: Pruner | Mapping[str, Any] | None = None
    max_retries: int = 2
    checkpoint_every: int = 0
    retry_failed: bool = False
    heartbeat_interval_s: float = 10.0
    stale_after_s: float = 60.0
    log_models: str = "best"
    system_metrics: bool = False
    enqueue: Sequence[Mapping[str, Any]] | None = None
    warm_start: str | None = None
    warm_start_values: str = "quantile"
    importance: str = "ped_anova"
    directions: Sequence[str] | None = None
    metrics: Sequence[str] | None = None
    goal: Direction = field(init=False)
    goals: tuple[Direction, ...] = field(init=False)
    search: Strategy = field(init=False, repr=False, compare=False)
    runner: Executor = field(init=False, repr=False, compare=False)
    stopper: Pruner = field(init=False)
    budget: int = field(init=False)

    def __post_init__(self) -> None:
        integer("seed", self.seed)
        if self.n_trials is not None:
            integer("n_trials", self.n_trials, minimum=1)
        if self.study is not None and not str(self.study).strip():
            raise ConfigError("study", "the study name must not be empty")
        if not DEVICE.match(str(self.device)):
            raise ConfigError("device", f"expected auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        try:
            goal = Direction(self.direction)
        except ValueError:
            raise ConfigError("direction", f"must be minimize or maximize, got {self.direction!r}") from None
        if self.log_models not in LOG_MODELS:
            raise ConfigError("log_models", f"must be one of {', '.join(LOG_MODELS)}, got {self.log_models!r}")
        if self.importance not in IMPORTANCE:
            raise ConfigError("importance", f"must be one of {', '.join(IMPORTANCE)}, got {self.importance!r}")
        integer("max_retries", self.max_retries, minimum=0)
        integer("checkpoint_every", self.checkpoint_every, minimum=0)
        if not isinstance(self.retry_failed, bool):
            raise ConfigError("retry_failed", f"must be true or false, got {self.retry_failed!r}")
        for key in ("heartbeat_interval_s", "stale_after_s", "poll_interval_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(key, f"must be a positive number of seconds, got {value!r}")
        if not self.stale_after_s > 2 * self.heartbeat_interval_s:
            raise ConfigError("stale_after_s", f"must exceed twice the heartbeat interval "
                                               f"({self.heartbeat_interval_s} s), got {self.stale_after_s!r}")
        goals = self._goals() or (goal,)
        goal = goals[0]
        stopper = self._pruner()
        if len(goals) > 1 and stopper.active:
            raise ConfigError("pruner", f"{stopper.name} watches one metric: a study of several objectives takes none")
        if len(goals) > 1 and self.warm_start is not None:
            raise ConfigError("warm_start", "a study of several objectives starts cold")
        if stopper.active and self.metric is None:
            raise ConfigError("metric", "a pruner watches the objective's metric: name it (metric=...)")
        if self.strategy == "per_epoch" and stopper.halving is not None:
            raise ConfigError("pruner", f"{stopper.name}: per_epoch trains one epoch per trial, so there are no rungs "
                                        "to cut at")
        options = dict(self.strategy_options or {})
        if stopper.halving is not None and self.strategy in BAYES:
            options.setdefault("fidelity", "rungs")  # BOHB's rule: a stopped trial is not a failed one
        if self.warm_start is not None:
            warm_source(self.warm_start, self.experiment)
            if self.warm_start_values not in WARM_VALUES:
                raise ConfigError("warm_start_values", f"must be one of {list(WARM_VALUES)}, got "
                                                       f"{self.warm_start_values!r}")
            if (self.strategy if self.strategy != BOHB else "optuna_tpe") not in HISTORY_ALONE:
                raise ConfigError("warm_start", f"strategy {self.strategy!r} follows a plan of its own and takes no "
                                                f"earlier results: use one of {list(HISTORY_ALONE)} or bohb")
        search = make_strategy(self.strategy, self.space, self.seed, goal, options, n_trials=self.n_trials,
                               enqueue=check_enqueued(self.space, self.enqueue), directions=goals)
        if isinstance(search, RungFitted) and stopper.halving is None:
            raise ConfigError("pruner", f"strategy {self.strategy!r} fits on the rungs of a halving pruner: use "
                                        "pruner=asha or pruner=hyperband (or strategy.fidelity=final)")
        budget = self.n_trials if self.n_trials is not None else search.max_trials()
        if budget is None:
            raise ConfigError("n_trials", f"strategy {self.strategy!r} never finishes by itself: set n_trials")
        runner = make_executor(self.executor) if isinstance(self.executor, str) else self.executor
        for name, value in (("goal", goal), ("goals", goals), ("search", search), ("runner", runner),
                            ("stopper", stopper), ("budget", budget)):
            object.__setattr__(self, name, value)  # how a frozen dataclass sets what it derives

    def _goals(self) -> tuple[Direction, ...]:
        """The directions of a study of several objectives (``directions`` and ``metrics``, which replace
        ``direction`` and ``metric``); empty for a study of one."""
        if self.directions is None and self.metrics is None:
            return ()
        for key, value in (("directions", self.directions), ("metrics", self.metrics)):
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < 2:
                raise ConfigError(key, f"must list two or more objectives with directions and metrics (one of each "
                                       f"per objective), got {value!r}")
        if len(self.directions) != len(self.metrics):
            raise ConfigError("metrics", f"{len(self.metrics)} metrics for {len(self.directions)} directions: give "
                                         "one metric per direction")
        if len(set(self.metrics)) < len(self.metrics):
            raise ConfigError("metrics", f"each objective must be another metric, got {list(self.metrics)}")
        try:
            return tuple(Direction(d) for d in self.directions)
        except ValueError:
            raise ConfigError("directions", f"each must be minimize or maximize, got {list(self.directions)}") from None

    def _pruner(self) -> Pruner:
        if isinstance(self.pruner, Pruner):
            return self.pruner
        try:
            return Pruner(**(self.pruner or {}))
        except TypeError as error:  # an option Pruner does not have
            raise ConfigError("pruner", str(error)) from None


def integer(key: str, value: Any, minimum: int | None = None) -> None:
    """Refuse ``value`` for ``key`` unless it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}")


def warm_source(warm_start: Any, experiment: str) -> tuple[str, str]:
    """The (experiment, study) a ``warm_start`` value names: ``study`` in ``experiment``, or ``experiment/study``."""
    if not isinstance(warm_start, str) or not warm_start.strip("/ "):
        raise ConfigError("warm_start", f"must name a study (study or experiment/study), got {warm_start!r}")
    source, _, name = warm_start.rpartition("/")
    return source or experiment, name
