"""One job of the search bench: one searcher on one problem with one seed, at every budget.

Project strategies run as studies of the real ``Driver`` on the in-memory store (``run_in_memory``: inline,
so one number at a time, lowest first, each result in the history before the next proposal), built by
``make_strategy`` with the budget (which fits its plan to it), until the budget is spent or the strategy
says it is finished.
A strategy that raises ``ConfigError`` for the space or the budget has "not accepted" it; a study that
raises anything else (factorial_grid when a phase-1 run fails) is recorded as an "error". Optuna's
``TPESampler`` and ``GPSampler`` (defaults, seeded) run through ``ask``/``tell``.

Each budget is its own study, but a study whose plan does not depend on the budget is the prefix of
the largest such study: budgets share one run (and its ``run_seconds``) when the strategy's options and
budget note are the same for them. Random, gp_bo, gamma_bo, optuna_tpe and Optuna's samplers
take no note and no budget-sized option; grid's ``points`` (the largest grid that fits the budget) and
the budget-aware plans of t_sampling and factorial_grid depend on it. Every other option is the
strategy's default (the BOs: 2 random points, then EI until the budget; t_sampling: 20 samples per
combination, alpha 0.05; optuna_tpe: 10 startup trials, multivariate).

The configuration a searcher would pick after t trials is its trial with the best *observed* value
so far (``best_trial``: the earliest on a tie); its regret is the problem's ``truth`` of that
configuration (the noise-free value of a synthetic function) minus the reference minimum.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import optuna

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Int, LogFloat, Params, SearchSpace
from hpo_tune.storage.memory import run_in_memory
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.tpe import distribution
from hpo_tune.trial import Direction, Trial, TrialState, best_trial

LEVELS = 5  # per numeric dimension of a discretised space, by default
OPTUNA_SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "TPESampler": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "GPSampler": lambda seed: optuna.samplers.GPSampler(seed=seed),
}
# The slowest first, so that the pool's tail is short.
SEARCHERS = ("GPSampler", "gp_bo", "gamma_bo", "optuna_tpe", "TPESampler", "t_sampling", "factorial_grid", "grid",
             "random")
DISCRETISED = ("t_sampling",)  # strategies that need every dimension to be a choice
NOT_ACCEPTED, ERROR = "not accepted", "error"  # statuses besides "ok"


class Problem(Protocol):
    """What a searcher is benchmarked on."""

    name: str
    direction: Direction

    def space(self) -> SearchSpace: ...

    def observe(self, params: Params, seed: int, number: int) -> float:
        """The value a searcher sees for trial ``number`` (noisy, or a real training)."""

    def truth(self, params: Params, observed: float) -> float:
        """The value regret is measured on: the noise-free function, or the observed value where there is none."""


@dataclass(frozen=True)
class Job:
    problem: str
    searcher: str
    seed: int
    budgets: tuple[int, ...]
    levels: int = LEVELS  # of each numeric dimension, for the searchers in DISCRETISED


def discretise(space: SearchSpace, levels: int = LEVELS) -> SearchSpace:
    """An all-choice space: each numeric range cut into ``levels`` equal cells (log cells for log floats),
    their midpoints as the values (integers rounded); choices stay."""
    dims = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            dims[name] = dim
            continue
        cells = (np.arange(levels) + 0.5) / levels
        if isinstance(dim, Int):
            values = tuple(sorted({int(round(dim.low - 0.5 + c * (dim.high - dim.low + 1))) for c in cells}))
        elif isinstance(dim, LogFloat):
            values = tuple(float(v) for v in np.exp(np.log(dim.low) + cells * np.log(dim.high / dim.low)))
        else:
            values = tuple(round(float(dim.low + c * (dim.high - dim.low)), 12) for c in cells)
        dims[name] = Choice(values)
    return SearchSpace(dims)


def grid_points(space: SearchSpace, budget: int) -> int:
    """The most values per numeric dimension whose full grid fits ``budget`` (at least 2: a larger grid is cut)."""
    def size(points: int) -> int:
        return math.prod(len(dim.grid(points)) for dim in space.values())

    points = 2
    while points < budget and size(points + 1) <= budget and size(points + 1) > size(points):
        points += 1
    return points


def options(searcher: str, space: SearchSpace, budget: int) -> dict[str, Any]:
    """Project defaults, except grid's ``points``, sized to the budget; the BOs propose until the budget."""
    return {"points": grid_points(space, budget)} if searcher == "grid" else {}


def fitted(searcher: str, problem: Problem, space: SearchSpace, seed: int,
           budget: int) -> tuple[dict[str, Any], str | None]:
    """A study's options and budget note: its plan. ConfigError when the searcher does not accept it."""
    if searcher in OPTUNA_SAMPLERS:
        return {}, None
    opts = options(searcher, space, budget)
    return opts, make_strategy(searcher, space, seed, problem.direction, opts, n_trials=budget).budget_note


def study(searcher: str, problem: Problem, space: SearchSpace, seed: int, budget: int,
          opts: Mapping[str, Any]) -> list[Trial]:
    """Run one study of at most ``budget`` trials; its history."""
    if searcher in OPTUNA_SAMPLERS:
        return drive_optuna(searcher, problem, space, seed, budget)
    strategy = make_strategy(searcher, space, seed, problem.direction, opts, n_trials=budget)
    return run_in_memory(strategy, lambda params, trial: problem.observe(params, seed, trial.number), budget)


def drive_optuna(searcher: str, problem: Problem, space: SearchSpace, seed: int, budget: int) -> list[Trial]:
    distributions = {name: distribution(dim) for name, dim in space.items()}
    study = optuna.create_study(direction=problem.direction.value, sampler=OPTUNA_SAMPLERS[searcher](seed))
    history = []
    for number in range(budget):
        asked = study.ask(distributions)
        trial = _trial(number, dict(asked.params), problem.observe(dict(asked.params), seed, number))
        failed = trial.state is not TrialState.COMPLETE
        study.tell(asked, trial.value, state=optuna.trial.TrialState.FAIL if failed else None)
        history.append(trial)
    return history


def _trial(number: int, params: Params, value: float) -> Trial:
    state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAILED
    return Trial(number, params, state, value if state is TrialState.COMPLETE else None, f"r{number}")


def picked_curve(problem: Problem, history: list[Trial]) -> list[float]:
    """After each trial, the truth (as a loss) of the trial with the best observed value so far; NaN before one."""
    curve, best = [], None
    for trial in history:
        if trial.state is TrialState.COMPLETE and (best is None or problem.direction.better(trial.value, best.value)):
            best = trial
        curve.append(math.nan if best is None else problem.direction.loss(problem.truth(best.params, best.value)))
    return curve


def run_job(job: Job, problems: Callable[[str], Problem]) -> list[dict[str, Any]]:
    """One row per budget: status, the picked configuration and its loss, the curve of the largest budget."""
    problem = problems(job.problem)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = discretise(problem.space(), job.levels) if job.searcher in DISCRETISED else problem.space()
    runs: dict[str, tuple[list[Trial], float]] = {}  # plan -> (history of its largest budget, seconds)
    rows = []
    for budget in sorted(job.budgets, reverse=True):
        row = {"function": job.problem, "searcher": job.searcher, "seed": job.seed, "budget": budget, "trials": 0,
               "failed": 0, "picked_loss": math.nan, "best_observed_loss": math.nan, "run_seconds": math.nan,
               "picked": "", "curve": []}
        try:
            opts, note = fitted(job.searcher, problem, space, job.seed, budget)
            plan = json.dumps([opts, note], sort_keys=True)
            if plan not in runs:
                start = time.perf_counter()
                history = study(job.searcher, problem, space, job.seed, budget, opts)
                runs[plan] = history, time.perf_counter() - start
        except ConfigError as error:
            rows.append({**row, "status": NOT_ACCEPTED, "note": str(error)})
            continue
        except Exception as error:  # a study that stops with an error is a result too, not the end of the bench
            rows.append({**row, "status": ERROR, "note": f"{type(error).__name__}: {error}"})
            continue
        history, seconds = runs[plan]
        history = history[:budget]
        curve = picked_curve(problem, history)
        losses = [problem.direction.loss(t.value) for t in history if t.state is TrialState.COMPLETE]
        picked = best_trial(history, problem.direction)
        rows.append({**row, "status": "ok", "note": note or "", "trials": len(history),
                     "failed": len(history) - len(losses), "picked_loss": curve[-1] if curve else math.nan,
                     "best_observed_loss": min(losses, default=math.nan), "run_seconds": seconds,
                     "picked": json.dumps(picked.params if picked else None, default=str), "curve": curve})
    return rows
