"""The Python API: ``optimize`` runs a tracked, resumable study of any objective.

It checks its arguments, opens (or reopens) the study's parent run and hands the loop to
``src.driver``. Several processes may call it with the same study at once: each trial number
still runs once, and a trial whose process died runs again.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from src.driver import Driver, Liveness
from src.errors import ConfigError, Terminated
from src.execution import LOG_MODELS, Executor, Objective, TrialJob, make_executor, resolve_device
from src.pruning import Pruner
from src.space import SearchSpace
from src.strategies import make_strategy
from src.tracking import StudySpec, Tracker, flatten
from src.tracking.lineage import DataVersion
from src.trial import Direction, Trial, best_trial

_log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class StudyResult:
    """How a study ended: its best trial (None if none completed), parent run id and all trials.

    ``errors`` counts the errors that ended its failed trials (first line of each), commonest first.
    """

    best: Trial | None
    parent_run_id: str
    trials: list[Trial]
    errors: dict[str, int] = field(default_factory=dict)


def optimize(
    objective: Objective,
    space: SearchSpace | Mapping[str, Any],
    strategy: str = "random",
    n_trials: int | None = None,
    *,
    direction: str = "minimize",
    metric: str | None = None,
    seed: int = 0,
    study: str | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = "hpo",
    strategy_options: Mapping[str, Any] | None = None,
    executor: str | Executor = "inline",
    device: str = "cpu",
    config: Mapping[str, Any] | None = None,
    config_text: str = "",
    tags: Mapping[str, str] | None = None,
    progress: bool = True,
    poll_interval_s: float = 2.0,
    fresh: bool = False,
    pruner: Pruner | Mapping[str, Any] | None = None,
    max_retries: int = 2,
    retry_failed: bool = False,
    heartbeat_interval_s: float = 10.0,
    stale_after_s: float = 60.0,
    data: DataVersion | None = None,
    log_models: str = "best",
    system_metrics: bool = False,
) -> StudyResult:
    """Tune ``objective`` over ``space`` and track every trial in MLflow.

    ``objective(params)`` or ``objective(params, trial)`` returns a number, or a mapping holding
    ``metric``; ``trial`` (a ``TrialContext``) carries the trial's seed and device and a
    ``report(epoch, metrics)`` callback that logs learning curves. An objective may have a
    ``setup()`` method: it runs before the trial's time limit starts (load data there). Running the
    same call again resumes the study of that name: finished trials are kept, interrupted ones run
    again with their parameters, and a larger ``n_trials`` adds only the missing trials; any number
    of processes may run it at once and each trial still runs once. ``config`` is whatever else
    defines the study (dataset, model, ...): it is recorded, and a resume with a different one is
    refused. ``fresh=True`` deletes an existing study of that name first (a pipeline re-running a
    stage); ``retry_failed=True`` runs its failed trials again. ``executor`` runs trials inline or
    in parallel (``src.execution``); a trial whose worker dies runs again at most ``max_retries``
    times (a stopped or killed driver does not count). A running trial's heartbeat is refreshed
    every ``heartbeat_interval_s``; other processes take a trial on another host whose heartbeat
    is older than ``stale_after_s`` as dead. ``pruner`` (``src.pruning``) stops running trials whose
    ``metric`` curve is clearly worse than their finished siblings'. SIGTERM stops the study as
    Ctrl-C does (raising ``Terminated``).

    Every run records the code that made it (git commit, dirty or not); ``data`` (a
    ``src.tracking.lineage.DataVersion``) is logged as every trial's dataset inputs. A model the
    objective offers (``trial.keep_model(model, input_example)``) is logged as an MLflow model when
    ``log_models`` says so (``best``: when the trial beats every one before it; ``all``; ``none``),
    and the study's best one is registered under the study's name with the alias ``best``.
    ``system_metrics`` logs MLflow's CPU, memory and GPU metrics on each trial's run.
    """
    space = space if isinstance(space, SearchSpace) else SearchSpace.from_config(space)
    try:
        goal = Direction(direction)
    except ValueError:
        raise ConfigError("direction", f"must be 'minimize' or 'maximize', got {direction!r}") from None
    chosen = make_strategy(strategy, space, seed, goal, strategy_options)
    if n_trials is not None:
        note = chosen.fit_budget(n_trials)
        if note:
            _log.warning(f"strategy {strategy!r}, n_trials={n_trials}: {note}")
    most = chosen.max_trials()
    budget = _budget(n_trials, most, strategy)
    if n_trials is not None:
        if most is not None and most < n_trials:  # one line, and the study runs what the strategy allows
            _log.warning(f"strategy {strategy!r} finishes after {most} trials, fewer than n_trials={n_trials}: its "
                         "own options say so (the BOs: n_initial + n_iterations; a grid: its points)")
    stopper = pruner if isinstance(pruner, Pruner) else Pruner(**(pruner or {}))
    if stopper.active and metric is None:
        raise ConfigError("metric", "a pruner watches the objective's metric: name it (metric=...)")
    liveness = _liveness(heartbeat_interval_s, stale_after_s, poll_interval_s)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError("max_retries", f"must be an integer >= 0, got {max_retries!r}")
    device = resolve_device(device)
    if log_models not in LOG_MODELS:
        raise ConfigError("log_models", f"must be one of {', '.join(LOG_MODELS)}, got {log_models!r}")
    runner = make_executor(executor) if isinstance(executor, str) else executor
    name = study or f"{strategy}-{getattr(objective, '__name__', type(objective).__name__)}"
    identity = {"seed": seed, "direction": goal.value, "metric": metric or "",
                "strategy": {"name": strategy, **(strategy_options or {})}, "space": space.describe(), **(config or {})}
    spec = StudySpec(name, experiment, goal, metric or "objective", flatten(identity),
                     {"strategy": strategy, **(tags or {})}, config_text)

    record = Tracker(tracking_uri).open_study(spec, space, fresh=fresh)
    record.stale_after_s = stale_after_s
    if data is not None:
        record.use_data(data)
    if retry_failed:
        record.retry_failed()
    make_job = partial(TrialJob, objective=objective, sink=record.sink, seed=seed, device=device, metric=metric,
                       space=space, direction=goal, pruner=stopper, log_models=log_models,
                       system_metrics=system_metrics)
    driver = Driver(record, chosen, runner, budget, make_job, device, name, progress, max_retries, liveness)
    status = "FAILED"
    try:
        with _sigterm_interrupts():
            trials = driver.run()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        driver.stop()
        record.end(status)
    return StudyResult(best_trial(trials, goal), record.run_id, trials, dict(record.errors().most_common()))


def _budget(n_trials: int | None, strategy_max: int | None, strategy: str) -> int:
    if n_trials is None:
        if strategy_max is None:
            raise ConfigError("n_trials", f"strategy {strategy!r} never finishes by itself: set n_trials")
        return strategy_max
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError("n_trials", f"must be an integer >= 1, got {n_trials!r}")
    return n_trials


def _liveness(heartbeat_interval_s: float, stale_after_s: float, poll_interval_s: float) -> Liveness:
    if not heartbeat_interval_s > 0:
        raise ConfigError("heartbeat_interval_s", f"must be > 0 seconds, got {heartbeat_interval_s!r}")
    if not stale_after_s > 2 * heartbeat_interval_s:
        raise ConfigError("stale_after_s", f"must exceed twice the heartbeat interval ({heartbeat_interval_s} s), "
                                           f"got {stale_after_s!r}")
    if not poll_interval_s > 0:
        raise ConfigError("poll_interval_s", f"must be > 0 seconds, got {poll_interval_s!r}")
    return Liveness(heartbeat_interval_s, stale_after_s, poll_interval_s)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread, so it stops a study as Ctrl-C
    does: the running trial is marked interrupted and the parent KILLED. A second SIGTERM kills at once."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated("the study's process received SIGTERM")

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
