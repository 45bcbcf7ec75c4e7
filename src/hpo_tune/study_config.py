"""One study's configuration, checked once.

``StudyConfig`` holds what a study runs with besides its objective: the search space and the
settings ``optimize`` takes. The Python API builds one from ``optimize``'s arguments, the CLI from
the composed Hydra config (``hpo_tune.config.study_config``). Building it is the check: every value is
validated there, and the strategy (its plan fitted to the budget), the executor and the pruner are
built there, so a mistake is a ``ConfigError`` naming its key before anything is tracked, and the
study runs the very objects that were checked. Importing this module loads neither MLflow nor torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.execution import DEVICE, LOG_MODELS, Executor, make_executor
from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import Strategy, make_strategy
from hpo_tune.strategies.fidelity import BAYES, RungFitted
from hpo_tune.trial import Direction

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class StudyConfig:
    """A study's settings, validated when built; each field is the ``optimize`` argument of that name.

    The checks build the rest: ``goal`` (the direction), ``search`` (the strategy, fitted to ``n_trials``),
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
    goal: Direction = field(init=False)
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
        stopper = self._pruner()
        if stopper.active and self.metric is None:
            raise ConfigError("metric", "a pruner watches the objective's metric: name it (metric=...)")
        if self.strategy == "per_epoch" and stopper.halving is not None:
            raise ConfigError("pruner", f"{stopper.name}: per_epoch trains one epoch per trial, so there are no rungs "
                                        "to cut at")
        options = dict(self.strategy_options or {})
        if stopper.halving is not None and self.strategy in BAYES:
            options.setdefault("fidelity", "rungs")  # BOHB's rule: a stopped trial is not a failed one
        search = make_strategy(self.strategy, self.space, self.seed, goal, options, n_trials=self.n_trials)
        if isinstance(search, RungFitted) and stopper.halving is None:
            raise ConfigError("pruner", f"strategy {self.strategy!r} fits on the rungs of a halving pruner: use "
                                        "pruner=asha or pruner=hyperband (or strategy.fidelity=final)")
        budget = self.n_trials if self.n_trials is not None else search.max_trials()
        if budget is None:
            raise ConfigError("n_trials", f"strategy {self.strategy!r} never finishes by itself: set n_trials")
        runner = make_executor(self.executor) if isinstance(self.executor, str) else self.executor
        for name, value in (("goal", goal), ("search", search), ("runner", runner), ("stopper", stopper),
                            ("budget", budget)):
            object.__setattr__(self, name, value)  # how a frozen dataclass sets what it derives

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
