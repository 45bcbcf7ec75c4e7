"""Wall time of a pruned study with 1 and 4 workers, the digits table replayed as sleeps.

Each epoch a trial trains is replayed as a sleep of its recorded seconds (``epoch_seconds`` of its
configuration and training seed) times ``scale``, then reported. A study runs ``n_trials`` configurations:

- Optuna: ``TPESampler(seed=0)`` and each pruner of ``runner.OPTUNA_PRUNERS``, ``study.optimize`` with
  ``n_jobs`` 1 and 4 (threads; a sleeping thread leaves the GIL, so 4 threads overlap their sleeps).
- The project: ``optuna_tpe`` and each pruner of ``runner.PROJECT_PRUNERS``, through ``hpo_tune.study.optimize``
  on a temporary SQLite MLflow store with a process pool of 1 and of 4 workers (``ProcessExecutor``, warmed
  before each study: the figures leave out starting the workers, which a study pays once). Every epoch is logged to
  MLflow, and a paused trial's checkpoint is an artifact: that is the project's overhead, on top of the sleeps.

Printed per study: wall seconds, the seconds its epochs slept in all (what one worker with no overhead
would take), epochs and trials; tabled with the wall time beyond the sleeps shared perfectly among the
workers (slept / workers), per epoch, and the speed-up of 4 workers over 1. The studies of 1 and 4 workers
sample their own configurations (TPE sees other results when 4 run at once), so their epochs differ.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from bench.multifidelity.digits import DigitsTable
from bench.multifidelity.runner import OPTUNA_PRUNERS, PROJECT_PRUNERS
from hpo_tune.space import Choice, Float, Int, LogFloat, Params, SearchSpace
from hpo_tune.trial import trial_seed

SCALE = 1.0  # the table's epochs last 24 ms on average: scaled further down, the replay would time only the tracking
WORKERS = (1, 4)
SEED = 0


def suggest(trial: optuna.Trial, space: SearchSpace) -> Params:
    """The parameters of an Optuna trial for ``space`` (the digits space's kinds of dimension)."""
    params = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            params[name] = trial.suggest_categorical(name, list(dim.values))
        elif isinstance(dim, Int):
            params[name] = trial.suggest_int(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Float):
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=isinstance(dim, LogFloat))
    return params


def slept(problem: DigitsTable, params: Params, seed: int, epochs: Any, scale: float) -> float:
    seconds = problem.epoch_seconds(params, seed)
    return scale * float(sum(seconds[e - 1] for e in epochs))


def time_optuna(problem: DigitsTable, pruner: str, n_trials: int, workers: int, scale: float) -> dict[str, Any]:
    space = problem.space()

    def objective(trial: optuna.Trial) -> float:
        params, seed = suggest(trial, space), trial_seed(SEED, trial.number)
        seconds, value = problem.epoch_seconds(params, seed), math.nan
        for epoch in range(1, problem.epochs + 1):
            time.sleep(scale * float(seconds[epoch - 1]))
            value = problem.value(params, seed, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED),
                                pruner=OPTUNA_PRUNERS[pruner](problem.epochs),
                                study_name=f"walltime-{pruner}-{workers}")
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, n_jobs=workers)
    wall = time.perf_counter() - start
    trials = study.trials
    return {"wall_s": wall, "trials": len(trials), "epochs": sum(len(t.intermediate_values) for t in trials),
            "slept_s": sum(slept(problem, t.params, trial_seed(SEED, t.number), t.intermediate_values, scale)
                           for t in trials),
            "best": max((t.value for t in trials if t.value is not None), default=math.nan)}


def replay_objective(problem: DigitsTable, scale: float) -> Any:
    """The project's objective: sleeps each epoch's recorded seconds, resumes from its checkpoint."""

    def objective(params: Params, trial: Any) -> dict[str, float]:
        saved = trial.restore()
        seconds, value = problem.epoch_seconds(params, trial.seed), math.nan
        for epoch in range(1 if saved is None else saved.epoch + 1, problem.epochs + 1):
            time.sleep(scale * float(seconds[epoch - 1]))
            value = problem.value(params, trial.seed, epoch)
            trial.report(epoch, {"value": value}, checkpoint=lambda epoch=epoch: {"epoch": epoch})
        return {"value": value}

    return objective


def time_project(problem: DigitsTable, pruner: str, n_trials: int, executor: Any, store: str, study: str,
                 scale: float) -> dict[str, Any]:
    from hpo_tune.study import optimize

    start = time.perf_counter()
    result = optimize(replay_objective(problem, scale), problem.space(), "optuna_tpe", n_trials=n_trials,
                      direction="maximize", metric="value", seed=SEED, study=study, tracking_uri=store,
                      executor=executor, pruner=PROJECT_PRUNERS[pruner](problem.epochs), progress=False,
                      log_models="none", poll_interval_s=0.05)
    wall = time.perf_counter() - start
    trials = result.trials
    return {"wall_s": wall, "trials": len(trials), "epochs": sum(len(t.curve) for t in trials),
            "slept_s": sum(slept(problem, t.params, trial_seed(SEED, t.number), t.curve, scale) for t in trials),
            "best": max((t.value for t in trials if t.value is not None), default=math.nan)}


def run(problem: DigitsTable, n_trials: int, optuna_pruners: list[str], project_pruners: list[str],
        scale: float = SCALE) -> pd.DataFrame:
    """Time every study; print each as it is measured; one row per (searcher, pruner, workers)."""
    from hpo_tune.execution import ProcessExecutor

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"\nWall time, digits table replayed as sleeps (x{scale} of the recorded epoch seconds), {n_trials} "
          f"configurations per study, workers {list(WORKERS)}", flush=True)
    rows = []

    def record(searcher: str, pruner: str, workers: int, measured: dict[str, Any]) -> None:
        rows.append({"searcher": searcher, "pruner": pruner, "workers": workers, **measured})
        print(f"  {searcher:<11} {pruner:<13} {workers} worker{'s' * (workers > 1)}: {measured['wall_s']:6.2f} s wall, "
              f"{measured['slept_s']:6.2f} s slept, {measured['epochs']:4d} epochs, {measured['trials']:3d} trials",
              flush=True)

    for pruner in optuna_pruners:
        for workers in WORKERS:
            record("TPESampler", pruner, workers, time_optuna(problem, pruner, n_trials, workers, scale))
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for k, pruner in enumerate(project_pruners):
            for workers in WORKERS:
                pool = ProcessExecutor(n_workers=workers)
                pool.warm()  # the study closes it
                try:
                    measured = time_project(problem, pruner, n_trials, pool, store, f"walltime-{k}-{workers}", scale)
                except Exception as error:  # noqa: BLE001 - one failed study is a row, not the end of the bench
                    print(f"  optuna_tpe  {pruner:<13} {workers}: {type(error).__name__}: {error}", flush=True)
                    continue
                record("optuna_tpe", pruner, workers, measured)
    frame = pd.DataFrame(rows)
    return frame


def markdown_table(frame: pd.DataFrame) -> str:
    """Markdown: per searcher and pruner, wall and slept seconds with 1 and 4 workers, and the speed-up."""
    from hpo_tune.strategies.factorial.tables import markdown

    if frame.empty:
        return "(no study ran)\n"
    records = []
    for (searcher, pruner), group in frame.groupby(["searcher", "pruner"], sort=False):
        by = group.set_index("workers")
        record = {"searcher": searcher, "pruner": pruner}
        for workers in WORKERS:
            if workers in by.index:
                record[f"wall s, {workers}w"] = f"{by.wall_s[workers]:.2f}"
                record[f"slept s, {workers}w"] = f"{by.slept_s[workers]:.2f}"
                record[f"epochs, {workers}w"] = str(int(by.epochs[workers]))
        for workers in WORKERS:
            if workers in by.index:  # what the sleeps alone would take with that many workers, perfectly shared
                beyond = (by.wall_s[workers] - by.slept_s[workers] / workers) / max(1, by.epochs[workers])
                record[f"beyond slept/workers, ms/epoch, {workers}w"] = f"{1000 * beyond:.1f}"
        record["speed-up 4w/1w"] = (f"{by.wall_s[1] / by.wall_s[4]:.2f}" if {1, 4} <= set(by.index) else "-")
        records.append(record)
    return markdown(pd.DataFrame(records).fillna(""))
