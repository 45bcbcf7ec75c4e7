"""One job of the multi-fidelity bench: one searcher with one pruner on one problem with one seed.

A *problem* (``digits.DigitsTable``, ``hartmann.MFHartmann``) gives a trial's value after each epoch
(``value(params, trial_seed, epoch)``, epochs 1..``epochs``), the truth of a configuration and its
regret. A job runs a study until it has spent ``cap`` epochs (it finishes the trial in progress, so it
may spend a little more), counting them in the objective: every epoch the objective computes and reports
is one epoch spent, so a promoted trial resumed from its checkpoint pays only for the epochs after it.

The *incumbent* is the trial with the best value observed at the last epoch among the trials that reached
it (the earliest on a tie); the job records, after every epoch spent, the regret of the incumbent's
configuration (``inf`` before any trial reached the last epoch). A trial "reaches" the last epoch when its
objective computes the epoch-``epochs`` value, whatever a pruner says after (none prunes there).

Searchers:

- Optuna's ``TPESampler(seed=seed)`` through ``ask``/``tell``, reporting each epoch with
  ``trial.report`` and asking ``trial.should_prune``, with the pruners in ``OPTUNA_PRUNERS``: ``none``
  (``NopPruner``), ``asha`` (``SuccessiveHalvingPruner()``: Optuna's defaults, reduction factor 4,
  ``min_resource`` "auto", i.e. 1 here) and ``hyperband`` (``HyperbandPruner(min_resource=1,
  max_resource=epochs)``, reduction factor 3). Hyperband's bracket of a trial is a CRC of the study name and
  trial number, so the studies are named after the problem, searcher, pruner and seed (an unnamed study gets a
  random name, and other brackets at every run). Optuna's pruners may prune at the last epoch (a rung at
  ``max_resource``): such a trial still reached it, and counts for the incumbent.
- The project's strategies, built as ``optimize`` builds them (``StudyConfig``: defaults, so under a halving
  pruner gp_bo and gamma_bo fit on the rungs; ``bohb`` is ``optuna_tpe`` fitted on the rungs, so it runs
  with the halving pruners only) as studies of the
  real driver on the in-memory store (``run_in_memory``, inline: one epoch at a time), with the pruners in
  ``PROJECT_PRUNERS``: ``none``, ``asha`` (stop mode), ``asha_promote`` and ``hyperband`` (stop mode), all
  ``min_resource=1, max_resource=epochs, reduction_factor=3``. The strategy is wrapped (``Capped``) so that
  it says the study is finished once the cap is spent; its budget of configurations is the cap (every trial
  trains at least one epoch), so the cap, not the budget, ends the study.

A trial's seed is ``hpo_tune.trial.trial_seed(seed, number)`` for both (what the project hands its objectives
as ``trial.seed``): it picks the digits table's training seed and Hartmann's noise, so Optuna's trial n
and the project's trial n see the same draws.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from bench.search.runner import options
from hpo_tune.pruning import Pruner
from hpo_tune.space import Params, SearchSpace
from hpo_tune.storage.memory import run_in_memory
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.strategies.tpe import distribution
from hpo_tune.study_config import StudyConfig
from hpo_tune.trial import Direction, Trial, TrialState, trial_seed

OPTUNA_PRUNERS: dict[str, Callable[[int], optuna.pruners.BasePruner]] = {
    "none": lambda epochs: optuna.pruners.NopPruner(),
    "asha": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(),
    "hyperband": lambda epochs: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
}
PROJECT_PRUNERS: dict[str, Callable[[int], Pruner]] = {
    "none": lambda epochs: Pruner(),
    "asha": lambda epochs: Pruner(name="asha", min_resource=1, max_resource=epochs, reduction_factor=3,
                                  mode="stop"),
    "asha_promote": lambda epochs: Pruner(name="asha", min_resource=1, max_resource=epochs, reduction_factor=3,
                                          mode="promote"),
    "hyperband": lambda epochs: Pruner(name="hyperband", min_resource=1, max_resource=epochs, reduction_factor=3),
}
OPTUNA_SEARCHERS = ("TPESampler",)
PROJECT_SEARCHERS = ("random", "optuna_tpe", "bohb", "gp_bo", "gamma_bo")
SEARCHERS = OPTUNA_SEARCHERS + PROJECT_SEARCHERS
PRUNERS = ("none", "asha", "asha_promote", "hyperband")
RUNG_ONLY = ("bohb",)  # fitted on a halving pruner's rungs: no run without one
BASELINES = {"bohb": "optuna_tpe"}  # whose no-pruning run a searcher without one is measured against
ERROR = "error"


class Problem(Protocol):
    """A learning-curve benchmark."""

    name: str
    direction: Direction
    epochs: int
    reference: float

    def space(self) -> SearchSpace: ...

    def value(self, params: Params, trial_seed: int, epoch: int) -> float: ...

    def regret(self, params: Params) -> float: ...


def pruners_for(searcher: str) -> tuple[str, ...]:
    if searcher in OPTUNA_SEARCHERS:
        return tuple(OPTUNA_PRUNERS)
    return tuple(p for p in PROJECT_PRUNERS if not (searcher in RUNG_ONLY and p == "none"))


@dataclass(frozen=True)
class Job:
    problem: str
    searcher: str
    pruner: str
    seed: int
    cap: int  # epochs to spend


class Ledger:
    """Epochs spent and the incumbent's regret after each, as the objective reports them."""

    def __init__(self, problem: Problem, cap: int):
        self.problem, self.cap = problem, cap
        self.epochs = 0
        self.trace: list[float] = []
        self.finished = 0
        self._best: tuple[float, float] | None = None  # (observed loss, regret) of the incumbent

    def spend(self, params: Params, value: float, last: bool) -> None:
        """One epoch computed, with ``value``; ``last``: it is the final epoch of the trial."""
        self.epochs += 1
        if last:
            self.finished += 1
            loss = self.problem.direction.loss(value)
            if self._best is None or loss < self._best[0]:
                self._best = (loss, self.problem.regret(params))
        self.trace.append(math.inf if self._best is None else self._best[1])

    @property
    def spent(self) -> bool:
        return self.epochs >= self.cap


class Capped(Strategy):
    """A strategy that says the study is finished once ``spent()``; its plots are left out (not needed)."""

    def __init__(self, inner: Strategy, spent: Callable[[], bool]):
        super().__init__(inner.space, inner.seed, inner.direction)
        self.inner, self.spent = inner, spent
        self.name, self.budget_note = inner.name, inner.budget_note

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        return Decision(finished=True) if self.spent() else self.inner.propose(history, numbers)

    def max_trials(self) -> int | None:
        return self.inner.max_trials()


def project_objective(problem: Problem, ledger: Ledger | None = None) -> Callable[[Params, Any], dict[str, float]]:
    """The objective the project's studies run: resumes from its checkpoint, reports every epoch."""

    def objective(params: Params, trial: Any) -> dict[str, float]:
        saved = trial.restore()
        start = 1 if saved is None else saved.epoch + 1
        value = math.nan
        for epoch in range(start, problem.epochs + 1):
            value = problem.value(params, trial.seed, epoch)
            if ledger is not None:
                ledger.spend(params, value, epoch == problem.epochs)
            trial.report(epoch, {"value": value}, checkpoint=lambda epoch=epoch: {"epoch": epoch})
        return {"value": value}

    return objective


def run_project(problem: Problem, searcher: str, pruner: str, seed: int, cap: int) -> tuple[Ledger, list[Trial]]:
    """The study ``optimize`` would run (``StudyConfig`` builds its strategy and pruner: under a halving pruner
    gp_bo and gamma_bo fit on the rungs, as they do by default), driven in memory until ``cap`` epochs."""
    space, ledger = problem.space(), Ledger(problem, cap)
    config = StudyConfig(space, searcher, cap, problem.direction.value, "value", seed,
                         strategy_options=options(searcher, space, cap), pruner=PROJECT_PRUNERS[pruner](problem.epochs))
    trials = run_in_memory(Capped(config.search, lambda: ledger.spent), project_objective(problem, ledger), cap,
                           pruner=config.stopper, metric="value", seed=seed)
    return ledger, trials


def run_optuna(problem: Problem, searcher: str, pruner: str, seed: int, cap: int) -> tuple[Ledger, list[Trial]]:
    ledger = Ledger(problem, cap)
    distributions = {name: distribution(dim) for name, dim in problem.space().items()}
    study = optuna.create_study(direction=problem.direction.value, sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=OPTUNA_PRUNERS[pruner](problem.epochs),
                                study_name=f"{problem.name}-{searcher}-{pruner}-{seed}")  # Hyperband's brackets
    trials = []
    while not ledger.spent:
        asked = study.ask(distributions)
        params, value, curve = dict(asked.params), math.nan, {}
        for epoch in range(1, problem.epochs + 1):
            value = problem.value(params, trial_seed(seed, asked.number), epoch)
            ledger.spend(params, value, epoch == problem.epochs)
            asked.report(value, epoch)
            curve[epoch] = value
            if asked.should_prune():
                study.tell(asked, state=optuna.trial.TrialState.PRUNED)
                state = TrialState.PRUNED
                break
        else:
            study.tell(asked, value)
            state = TrialState.COMPLETE
        trials.append(Trial(asked.number, params, state, value if state is TrialState.COMPLETE else None,
                            f"optuna-{asked.number}", curve=curve))
    return ledger, trials


def run_job(job: Job, problems: Callable[[str], Problem]) -> dict[str, Any]:
    """One row: the trace of regret against epochs spent (``cap`` long) and counts of what ran."""
    problem = problems(job.problem)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    row: dict[str, Any] = {"problem": job.problem, "searcher": job.searcher, "pruner": job.pruner, "seed": job.seed,
                           "cap": job.cap, "status": "ok", "note": "", "trials": 0, "complete": 0, "pruned": 0,
                           "paused_left": 0, "reached_last": 0, "epochs": 0, "run_seconds": math.nan, "trace": []}
    start = time.perf_counter()
    try:
        run = run_optuna if job.searcher in OPTUNA_SEARCHERS else run_project
        ledger, trials = run(problem, job.searcher, job.pruner, job.seed, job.cap)
    except Exception as error:  # a study that stops with an error is a result too, not the end of the bench
        return {**row, "status": ERROR, "note": f"{type(error).__name__}: {error}"}
    trace = ledger.trace[:job.cap]
    trace += [trace[-1] if trace else math.inf] * (job.cap - len(trace))  # a study that stopped short keeps its pick
    return {**row, "trials": len(trials), "complete": sum(t.state is TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state is TrialState.PRUNED and not t.paused for t in trials),
            "paused_left": sum(bool(t.paused) for t in trials), "reached_last": ledger.finished,
            "epochs": ledger.epochs, "run_seconds": time.perf_counter() - start, "trace": trace,
            "note": "" if ledger.epochs >= job.cap else f"stopped at {ledger.epochs} epochs"}
