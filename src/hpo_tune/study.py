"""The Python API: ``optimize`` runs a tracked, resumable study of any objective.

It checks its arguments by building a ``StudyConfig``; ``run_study`` (the CLI's entry too) opens
(or reopens) the study's parent run and hands the loop to ``hpo_tune.driver``. Several processes may
call it with the same study at once: each trial number still runs once, and a trial whose process
died runs again.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hpo_tune.driver import Driver, Liveness
from hpo_tune.errors import ConfigError, Terminated
from hpo_tune.execution import Executor, Objective, TrialJob, resolve_device
from hpo_tune.pareto import pareto_files, pareto_front
from hpo_tune.pruning import Pruner
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.prior import WARM_START_FROM, WarmStarted, prior_trials
from hpo_tune.study_config import DEFAULT_TRACKING_URI, StudyConfig, warm_source
from hpo_tune.tracking import StudySpec, Tracker, flatten
from hpo_tune.tracking.lineage import DataVersion
from hpo_tune.trial import Trial, best_trial

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyResult:
    """How a study ended: its best trial (None if none completed), parent run id and all trials.

    ``errors`` counts the errors that ended its failed trials (first line of each), commonest first. A study of
    several objectives has no best trial (``best`` is None): ``pareto`` holds its non-dominated complete trials.
    """

    best: Trial | None
    parent_run_id: str
    trials: list[Trial]
    errors: dict[str, int] = field(default_factory=dict)
    pareto: list[Trial] = field(default_factory=list)


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
    checkpoint_every: int = 0,
    retry_failed: bool = False,
    heartbeat_interval_s: float = 10.0,
    stale_after_s: float = 60.0,
    data: DataVersion | None = None,
    log_models: str = "best",
    system_metrics: bool = False,
    enqueue: Sequence[Mapping[str, Any]] | None = None,
    warm_start: str | None = None,
    warm_start_values: str = "quantile",
    importance: str = "ped_anova",
    directions: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
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
    in parallel (``hpo_tune.execution``); a trial whose worker dies runs again at most ``max_retries``
    times (a stopped or killed driver does not count); with ``checkpoint_every=k`` the state an objective offers to
    ``report`` (``checkpoint=``) is saved every k epochs, and such a re-run (or a resumed, interrupted trial) goes
    on from the last one rather than from epoch 0. A running trial's heartbeat is refreshed
    every ``heartbeat_interval_s``; other processes take a trial on another host whose heartbeat
    is older than ``stale_after_s`` as dead. ``pruner`` (``hpo_tune.pruning``) stops running trials whose
    ``metric`` curve is clearly worse than their finished siblings'. SIGTERM stops the study as
    Ctrl-C does (raising ``Terminated``).

    Every run records the code that made it (git commit, dirty or not); ``data`` (a
    ``hpo_tune.tracking.lineage.DataVersion``) is logged as every trial's dataset inputs. A model the
    objective offers (``trial.keep_model(model, input_example)``) is logged as an MLflow model when
    ``log_models`` says so (``best``: when the trial beats every one before it; ``all``; ``none``),
    and the study's best one is registered under the study's name with the alias ``best``.
    ``system_metrics`` logs MLflow's CPU, memory and GPU metrics on each trial's run.

    ``enqueue`` (parameter sets, as ``{name: value}``) runs those configurations first, as trials 0, 1, ... of
    the budget; ``warm_start`` (``study`` in ``experiment``, or ``experiment/study``) shows the strategy that
    earlier study's finished trials as if they were this one's, without running them again, their values as
    quantiles within each study (``warm_start_values="quantile"``) or as recorded (``"raw"``;
    ``hpo_tune.strategies.prior``).

    When the study ends its parameters are ranked by ``importance`` (``ped_anova``, ``fanova``; ``none`` skips it)
    and ``importance.csv`` and ``importance.png`` put on its parent run (``hpo_tune.importance_report``).

    ``directions`` and ``metrics`` (as many of each, two or more) make a study of several objectives in place of
    ``direction`` and ``metric``: the objective returns a mapping holding every metric, strategies ``nsga2``,
    ``optuna_tpe`` and ``random`` search it, and it ends with ``pareto``, its non-dominated trials, also put on the
    parent run as ``pareto.csv``, ``pareto.png`` and the tag ``pareto_run_ids`` (``hpo_tune.pareto``). What takes
    one value (the progress bar, the parent's ``best_objective``, ``log_models="best"``, importance) follows the
    first objective.
    """
    arguments = dict(locals())  # exactly the parameters: StudyConfig's fields, and the objective and data
    del arguments["objective"], arguments["data"]
    arguments["space"] = space if isinstance(space, SearchSpace) else SearchSpace.from_config(space)
    return run_study(objective, StudyConfig(**arguments), data)


def run_study(objective: Objective, config: StudyConfig, data: DataVersion | None = None) -> StudyResult:
    """Run the study ``config`` describes (checked, its strategy and executor built) on ``objective``.

    ``data`` is the objective's dataset version (see ``optimize``): it is passed beside the objective
    because it is known only once the objective has loaded its data, while the config is checked first.
    """
    chosen, goal, budget = config.search, config.goal, config.budget
    if chosen.budget_note:
        _log.warning(f"strategy {config.strategy!r}, n_trials={config.n_trials}: {chosen.budget_note}")
    most = chosen.max_trials()
    if config.n_trials is not None and most is not None and most < config.n_trials:  # one line; it runs `most`
        _log.warning(f"strategy {config.strategy!r} finishes after {most} trials, fewer than n_trials="
                     f"{config.n_trials}: its own options say so (the BOs: n_initial + n_iterations; a grid: its "
                     "points)")
    liveness = Liveness(config.heartbeat_interval_s, config.stale_after_s, config.poll_interval_s)
    device = resolve_device(config.device)
    name = config.study or f"{config.strategy}-{getattr(objective, '__name__', type(objective).__name__)}"
    metrics = tuple(config.metrics) if len(config.goals) > 1 else ()  # a study of several objectives
    metric = metrics[0] if metrics else config.metric
    identity = {"seed": config.seed, "direction": goal.value, "metric": config.metric or "",
                "strategy": {"name": config.strategy, **(config.strategy_options or {})},
                "space": config.space.describe(), **(config.config or {}),
                **({"enqueue": json.dumps(config.enqueue, sort_keys=True)} if config.enqueue else {}),
                **({"warm_start": "/".join(warm_source(config.warm_start, config.experiment)),
                    "warm_start_values": config.warm_start_values} if config.warm_start else {}),
                **({"directions": ",".join(d.value for d in config.goals), "metrics": ",".join(metrics)}
                   if metrics else {})}
    tracker, given = Tracker(config.tracking_uri), {}
    if config.warm_start:
        chosen = _warm_started(tracker, config)
        given = {WARM_START_FROM: chosen.source, "warm_start_trials": str(len(chosen.prior))}
    spec = StudySpec(name, config.experiment, goal, ",".join(metrics) or config.metric or "objective",
                     flatten(identity), {"strategy": config.strategy, **(config.tags or {}), **given},
                     config.config_text)

    record = tracker.open_study(spec, config.space, fresh=config.fresh)
    record.stale_after_s = config.stale_after_s
    if data is not None:
        record.use_data(data)
    if config.retry_failed:
        record.retry_failed()
    make_job = partial(TrialJob, objective=objective, sink=record.sink, seed=config.seed, device=device,
                       metric=metric, space=config.space, direction=goal, pruner=config.stopper,
                       log_models=config.log_models, system_metrics=config.system_metrics, reader=record,
                       checkpoint_every=config.checkpoint_every, metrics=metrics)
    driver = Driver(record, chosen, config.runner, budget, make_job, device, name, config.progress,
                    config.max_retries, liveness, pruner=config.stopper, seed=config.seed,
                    metric=metric or "objective")
    status = "FAILED"
    try:
        with _sigterm_interrupts():
            trials = driver.run()
        front = pareto_front(trials, config.goals) if metrics else []
        if front:
            record.parent.write_pareto(front, pareto_files(trials, front, metrics))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        driver.stop()
        record.end(status)
    if config.importance != "none":
        from hpo_tune.importance_report import at_study_end  # Optuna and matplotlib: only for a study that ranks

        at_study_end(config, record.run_id, [replace(t, values=()) for t in trials])  # ranks the first objective
    best = None if metrics else best_trial(trials, goal)
    return StudyResult(best, record.run_id, trials, dict(record.errors().most_common()), front)


def _warm_started(tracker: Tracker, config: StudyConfig) -> WarmStarted:
    """The study's strategy shown the finished trials of the study ``warm_start`` names (those its space holds)."""
    experiment, name = warm_source(config.warm_start, config.experiment)
    try:
        earlier = tracker.load_study(experiment, name, config.space, config.goal)
    except LookupError:
        raise ConfigError("warm_start", f"no study {name!r} in experiment {experiment!r} at "
                                        f"{config.tracking_uri}") from None
    direction = tracker.client.get_run(earlier.run_id).data.tags.get("direction", config.goal.value)
    if direction != config.goal.value:
        raise ConfigError("warm_start", f"study {experiment}/{name} was to {direction} its objective, this one "
                                        f"is to {config.goal.value} it")
    prior = prior_trials(earlier.history(full=True), config.space)
    _log.info(f"warm start: {len(prior)} finished trials of {experiment}/{name} shown to {config.strategy!r}")
    return WarmStarted(config.search, prior, f"{experiment}/{name}", config.warm_start_values)


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
