"""The Python API: ``optimize`` runs a tracked, resumable study of any objective.

The driver loop is the same for every strategy and executor: read the history back from MLflow,
ask the strategy for parameters for the trial numbers still free, hand them to the executor, and
repeat until every number below the budget is finished or the strategy says it is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tqdm.auto import tqdm

from src.errors import ConfigError
from src.execution import Executor, Objective, TrialJob, make_executor, resolve_device
from src.pruning import Pruner
from src.space import SearchSpace
from src.strategies import Strategy, make_strategy
from src.tracking import StudyRecord, StudySpec, Tracker, flatten
from src.trial import Direction, Proposal, Trial, TrialState, best_trial

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SUMMARY_INTERVAL_S = 2.0  # how often a running study refreshes its parent's best value and counts
ARTIFACT_INTERVAL_S = 30.0  # how often it refreshes the strategy's tables and plots there


@dataclass(frozen=True)
class StudyResult:
    """How a study ended: its best trial (None if none completed), parent run id and all trials."""

    best: Trial | None
    parent_run_id: str
    trials: list[Trial]


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
) -> StudyResult:
    """Tune ``objective`` over ``space`` and track every trial in MLflow.

    ``objective(params)`` or ``objective(params, trial)`` returns a number, or a mapping holding
    ``metric``; ``trial`` (a ``TrialContext``) carries the trial's seed and device and a
    ``report(epoch, metrics)`` callback that logs learning curves. Running the same call again
    resumes the study of that name: finished trials are kept, interrupted ones run again, and a
    larger ``n_trials`` adds only the missing trials. ``config`` is whatever else defines the study
    (dataset, model, ...): it is recorded, and a resume with a different one is refused.
    ``fresh=True`` deletes an existing study of that name first (a pipeline re-running a stage).
    ``executor`` runs trials inline or in parallel (``src.execution``); a trial whose worker is lost
    runs again at most ``max_retries`` times. ``pruner`` (``src.pruning``) stops running trials whose
    ``metric`` curve is clearly worse than their finished siblings'.
    """
    space = space if isinstance(space, SearchSpace) else SearchSpace.from_config(space)
    try:
        goal = Direction(direction)
    except ValueError:
        raise ConfigError("direction", f"must be 'minimize' or 'maximize', got {direction!r}") from None
    chosen = make_strategy(strategy, space, seed, goal, strategy_options)
    budget = _budget(n_trials, chosen.max_trials(), strategy)
    stopper = pruner if isinstance(pruner, Pruner) else Pruner(**(pruner or {}))
    if stopper.active and metric is None:
        raise ConfigError("metric", "a pruner watches the objective's metric: name it (metric=...)")
    runner = make_executor(executor) if isinstance(executor, str) else executor
    name = study or f"{strategy}-{getattr(objective, '__name__', type(objective).__name__)}"
    identity = {"seed": seed, "direction": goal.value, "metric": metric or "",
                "strategy": {"name": strategy, **(strategy_options or {})}, "space": space.describe(), **(config or {})}
    spec = StudySpec(name, experiment, goal, metric or "objective", flatten(identity),
                     {"strategy": strategy, **(tags or {})}, config_text)

    record = Tracker(tracking_uri).open_study(spec, space, fresh=fresh)
    record.reap_dead_trials(max_retries)
    status = "FAILED"
    try:
        make_job = partial(TrialJob, objective=objective, sink=record.sink, seed=seed, device=resolve_device(device),
                           metric=metric, space=space, direction=goal, pruner=stopper)
        trials = _drive(record, chosen, runner, budget, make_job, name, progress, poll_interval_s, max_retries)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        runner.close()
        record.end(status)
    return StudyResult(best_trial(trials, goal), record.run_id, trials)


def _budget(n_trials: int | None, strategy_max: int | None, strategy: str) -> int:
    if n_trials is None:
        if strategy_max is None:
            raise ConfigError("n_trials", f"strategy {strategy!r} never finishes by itself: set n_trials")
        return strategy_max
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError("n_trials", f"must be an integer >= 1, got {n_trials!r}")
    return n_trials


def _drive(record: StudyRecord, strategy: Strategy, runner: Executor, budget: int, make_job: Callable[..., TrialJob],
           name: str, progress: bool, poll_interval_s: float, max_retries: int) -> list[Trial]:
    """The loop: propose for the free numbers, run, settle what the executor reports, re-read."""
    history = record.history()
    inflight: dict[int, Proposal] = {}  # submitted, maybe not yet in MLflow: pending for the strategy
    bar = tqdm(total=budget, initial=_done(history, budget), desc=name, unit="trial", disable=not progress,
               dynamic_ncols=True)
    finished = False
    summarised = explained = time.monotonic()
    with bar:
        while True:
            recorded = {t.number for t in history}
            view = history + [Trial(n, p.params, TrialState.RUNNING, tags=p.tags) for n, p in inflight.items()
                              if n not in recorded]
            taken = recorded | set(inflight)
            free = [k for k in range(budget) if k not in taken][: runner.free_slots()]
            if free and not finished:
                decision = strategy.propose(view, free)
                finished = decision.finished
                for number, proposal in zip(free, decision.proposals):
                    runner.submit(make_job(number=number, proposal=proposal))
                    inflight[number] = proposal
            if runner.busy():
                outcome = runner.wait()
                for trial in outcome.finished:
                    inflight.pop(trial.number, None)
                for number in outcome.lost:
                    record.lost(number, inflight.pop(number), "its worker died", max_retries)
                for number in outcome.timed_out:
                    record.fail_running(number, inflight.pop(number),
                                        "TrialTimeout: the trial ran past its time limit and was stopped")
            elif any(t.state is TrialState.RUNNING for t in history):
                time.sleep(poll_interval_s)  # trials owned by another process of this study
            elif finished or not free:
                break
            else:
                raise RuntimeError(f"strategy {strategy.name!r} proposed nothing while no trial is running")
            history = record.history()
            best = best_trial(history, strategy.direction)
            if time.monotonic() - summarised >= SUMMARY_INTERVAL_S:
                record.write_summary(history)
                summarised = time.monotonic()
            if time.monotonic() - explained >= ARTIFACT_INTERVAL_S:
                record.log_artifacts(strategy.artifacts(history))
                explained = time.monotonic()
            bar.n = _done(history, budget)
            if best is not None:
                bar.set_postfix(best=f"{best.value:.4g}", refresh=False)
            bar.refresh()
    record.write_summary(history)
    record.log_artifacts(strategy.artifacts(history))
    return history


def _done(history: list[Trial], budget: int) -> int:
    return sum(t.finished and t.number < budget for t in history)
