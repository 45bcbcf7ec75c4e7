"""``TSampling``: the staged procedure as a pure function of the history, fitted to a budget."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Params, SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.strategies.t_sampling import tables
from hpo_tune.strategies.t_sampling.model import probabilities, surviving
from hpo_tune.strategies.t_sampling.plan import LEAST_SAMPLES, Plan, fit, worst_case
from hpo_tune.strategies.t_sampling.snapshot import Judged, TSamplingSnapshot
from hpo_tune.strategies.t_sampling.stages import (
    PILOT,
    Combination,
    Ledger,
    Samples,
    Stage,
    criterion,
    in_flight,
    key_of,
)
from hpo_tune.trial import Direction, Proposal, Trial, TrialState

# The command lines whose spaces are all choices (conf/space/lstm.yaml, Table 1 of seed 000), named when
# a space does not fit; a test checks that each of them validates with strategy=t_sampling. The default
# budget (20) is below the 36 trainings the 3^5 stages need at least, so the last two name one.
SUITED = ("experiment=seed000_gold", "experiment=seed000_bdi", "space=lstm model=lstm dataset=gold n_trials=100",
          "space=lstm model=lstm dataset=bdi n_trials=100")


@dataclass(frozen=True)
class View:
    """What a stage's finished trials decide: which combinations want more samples, fewest first, and,
    once none does, which survive (indices in stage order)."""

    index: dict[str, int]
    scheduled: list[int]
    wants: list[bool]
    ranked: list[int]
    survivors: list[int]

    @property
    def done(self) -> bool:
        return not self.ranked


@dataclass(frozen=True)
class Analysis:
    """The finished trials read as stages (the last may be incomplete); ``order`` is None while piloting."""

    order: tuple[str, ...] | None
    stages: tuple[Stage, ...] = ()
    views: tuple[View, ...] = ()


@dataclass(frozen=True)
class _Built:
    """A stage as built from its candidates (``base``: the order and its parents) after ``version`` changes."""

    base: tuple
    version: int
    stage: Stage
    view: View
    samples: Samples


class TSampling(Strategy):
    name = "t_sampling"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, order: Sequence[str] | None = None,
                 n_samples: int | str | None = 20, alpha: float = 0.05, scale: str = "standard_error",
                 sequential: bool = False, min_samples: int = 5, order_by: str = "config", pilot_trials: int = 0):
        super().__init__(space, seed, direction)
        for name, dim in space.items():
            if not isinstance(dim, Choice):
                raise ConfigError(f"space.{name}", "t_sampling needs choice dimensions (the conditions), not a numeric "
                                                   f"range; use a space of choices, e.g. {', '.join(SUITED)}")
        self.order = tuple(order) if order else space.parents_first
        if sorted(self.order) != sorted(space) or len(space) < 2:
            raise ConfigError("strategy.order", f"must list each of {list(space)} once (at least two)")
        for i, name in enumerate(self.order):
            for parent in space.conditions.get(name, {}):
                if self.order.index(parent) > i:
                    raise ConfigError("strategy.order", f"{name} is conditional on {parent}, so it must come after it: "
                                                        "a stage fixes a parent before the dimensions it switches on")
        auto = n_samples is None or n_samples == "auto"
        if not auto and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < LEAST_SAMPLES):
            raise ConfigError("strategy.n_samples", f"must be auto or an integer >= 2 (to estimate a spread), "
                                                    f"got {n_samples!r}")
        if not 0 < alpha <= 0.5:  # the criterion's own combination has probability 0.5 and must survive
            raise ConfigError("strategy.alpha", f"must be in (0, 0.5], got {alpha}")
        if scale not in ("standard_error", "predictive"):
            raise ConfigError("strategy.scale", f"must be standard_error or predictive, got {scale!r}")
        if sequential and not LEAST_SAMPLES <= min_samples <= (math.inf if auto else n_samples):
            raise ConfigError("strategy.min_samples", f"must be in [2, n_samples], got {min_samples}")
        if order_by not in ("config", "sensitivity"):
            raise ConfigError("strategy.order_by", f"must be config or sensitivity, got {order_by!r}")
        if order_by == "sensitivity" and pilot_trials < 2:
            raise ConfigError("strategy.pilot_trials", "ordering by sensitivity needs pilot_trials >= 2")
        self.requested = None if auto else n_samples
        self.alpha, self.scale, self.sequential, self.min_samples = alpha, scale, sequential, min_samples
        self.order_by, self.pilot_trials = order_by, pilot_trials if order_by == "sensitivity" else 0
        self.plan = None if auto else Plan(n_samples, min_samples)
        self._lock = threading.Lock()  # propose and the readers (progress, stages, winner) share the ledger
        self._ledger = Ledger(direction)
        self._analysis: Analysis | None = None
        self._built: dict[int, _Built] = {}  # per stage number, the latest stage built

    def _plan(self) -> Plan:
        if self.plan is None:
            raise ConfigError("n_trials", "t_sampling with n_samples=auto sizes its stages to the budget: set n_trials "
                                          "(or give n_samples)")
        return self.plan

    def _sizes(self) -> list[int]:
        """Condition counts in the planning order: the widest order when the pilot will choose it."""
        sizes = [len(self.space[name].values) for name in self.order]
        return sorted(sizes, reverse=True) if self.order_by == "sensitivity" else sizes

    def fit_budget(self, n_trials: int) -> str | None:
        """Samples per combination and survivors per stage sized to ``n_trials`` (see ``plan``)."""
        self.plan, note = fit(self.requested, self.min_samples if self.sequential else None, self._sizes(),
                              self.pilot_trials, n_trials, widest=self.order_by == "sensitivity")
        with self._lock:
            self._analysis, self._built = None, {}
        return note

    def max_trials(self) -> int:
        """An upper bound: every combination of every stage survives, or the budget if that is smaller."""
        plan = self._plan()
        most = self.pilot_trials + plan.n_samples * worst_case(self._sizes())
        return most if plan.n_trials is None else min(most, plan.n_trials)

    # -- the Student-t model ---------------------------------------------------------------------

    def probability(self, combination: Combination, criterion: float) -> float:
        """P(loss < criterion) under the Student-t model of the combination's samples."""
        samples = Samples.of([combination])
        return float(probabilities(samples.n, samples.mean, samples.sd, criterion, self.scale)[0])

    def survivors(self, stage: Stage) -> list[Combination]:
        kept = surviving(Samples.of(stage.combinations), stage.keep, self.alpha, self.scale)
        return [stage.combinations[i] for i in kept]

    # -- reading the history ---------------------------------------------------------------------

    def _read(self, history: Sequence[Trial]) -> tuple[Analysis, Counter[tuple[int, str]]]:
        """The finished trials' analysis (cached until they change) and the running trials per (stage, combination)."""
        busy = in_flight(history)
        with self._lock:
            if self._ledger.update(history) or self._analysis is None:
                self._analysis = self._analyse(self._ledger, self._built)
            return self._analysis, busy

    def _analyse(self, ledger: Ledger, cache: dict[int, _Built]) -> Analysis:
        """The stages read off ``ledger``; ``cache`` keeps each stage as built, for the next call to patch."""
        pilot = ledger.pilot_trials()
        order = self._order(pilot)
        if order is None:
            return Analysis(None)
        plan, used = self._plan(), len(pilot)
        stages, views, parents = [], [], ()
        for number in range(1, len(order)):
            used += ledger.totals[number]
            last = number == len(order) - 1
            keep = None if last else plan.keep(used, [len(self.space[name].values) for name in order[number + 1:]])
            stage, view = self._stage(ledger, cache, number, order, parents, keep)
            stages.append(stage)
            views.append(view)
            if not view.done or last or not view.survivors:
                break
            parents = tuple(stage.combinations[i].fixed for i in view.survivors)
        return Analysis(order, tuple(stages), tuple(views))

    def _stage(self, ledger: Ledger, cache: dict[int, _Built], number: int, order: tuple[str, ...],
               parents: tuple[Params, ...], keep: int | None) -> tuple[Stage, View]:
        """A stage and its view; when only some of its combinations' trials changed, patched where they did."""
        base = order, tuple(key_of(p) for p in parents)
        changes = ledger.changes.get(number, [])
        built = cache.get(number)
        if built is not None and built.base == base and built.version == len(changes) and built.stage.keep == keep:
            return built.stage, built.view
        names = order[: number + 1]
        if built is not None and built.base == base:
            index, combinations = built.view.index, list(built.stage.combinations)
            changed = {index[key]: key for key in set(changes[built.version:]) if key in index}
            for i, key in changed.items():
                combinations[i] = ledger.combination(number, combinations[i].fixed, key)
            samples = built.samples.updated({i: combinations[i] for i in changed})
        else:
            fixed = self._cross(self._cross([{}], names[0]) if number == 1 else parents, names[-1])
            index = {key_of(f): i for i, f in enumerate(fixed)}
            combinations = [ledger.combination(number, f, k) for f, k in zip(fixed, index)]
            samples = Samples.of(combinations)
        stage = Stage(number, names, tuple(combinations), keep)
        plan = self._plan()
        wants = samples.scheduled < plan.n_samples
        if self.sequential:
            bar = criterion(samples, plan.min_samples)
            hopeless = probabilities(samples.n, samples.mean, samples.sd, bar, self.scale) < self.alpha
            wants &= ~((samples.n >= plan.min_samples) & hopeless)
        ranked = np.flatnonzero(wants)[np.argsort(samples.scheduled[wants], kind="stable")].tolist()
        view = View(index, samples.scheduled.tolist(), wants.tolist(), ranked,
                    [] if ranked else surviving(samples, keep, self.alpha, self.scale))
        cache[number] = _Built(base, len(changes), stage, view, samples)
        return stage, view

    def _cross(self, fixed: Sequence[Params], name: str) -> list[Params]:
        """Each of ``fixed`` with each condition of ``name``; unchanged, one combination, where ``name`` is inactive
        under it (a conditional space: only active conditions are crossed)."""
        values = self.space[name].values
        return [crossed for f in fixed
                for crossed in ([{**f, name: v} for v in values] if name in self.space.active(f) else [f])]

    def _order(self, pilot: list[Trial]) -> tuple[str, ...] | None:
        if self.order_by == "config":
            return self.order
        if len(pilot) < self.pilot_trials:
            return None
        done = [t for t in pilot if t.state is TrialState.COMPLETE and t.value is not None]
        sensitivity = {name: self._spread(done, name) for name in self.order}
        return self.space.ordered(sorted(self.order, key=lambda name: (-sensitivity[name], self.order.index(name))))

    def _spread(self, trials: list[Trial], name: str) -> float:
        means = [np.mean([self.direction.loss(t.value) for t in trials if t.params.get(name) == value])
                 for value in self.space[name].values if any(t.params.get(name) == value for t in trials)]
        return float(max(means) - min(means)) if len(means) > 1 else 0.0

    @staticmethod
    def _current(analysis: Analysis, running: Counter[tuple[int, str]]) -> tuple[int, dict[int, int]]:
        """The stage in progress (or the last, when all are complete) and its running samples per combination."""
        last = len(analysis.stages) - 1
        for i, (stage, view) in enumerate(zip(analysis.stages, analysis.views)):
            busy = {view.index[key]: count for (number, key), count in running.items()
                    if number == stage.number and key in view.index}
            if not view.done or busy or i == last:
                break
        return i, busy

    def progress(self, history: Sequence[Trial]) -> tuple[list[Stage], tuple[str, ...] | None, bool]:
        """The stages so far (those before the last are complete), the order used (None while piloting), and
        whether the last is complete."""
        return self._progress(*self._read(history))

    @classmethod
    def _progress(cls, analysis: Analysis,
                  running: Counter[tuple[int, str]]) -> tuple[list[Stage], tuple[str, ...] | None, bool]:
        if analysis.order is None:
            return [], None, False
        current, busy = cls._current(analysis, running)
        stages = list(analysis.stages[: current + 1])
        stages[-1] = replace(stages[-1], combinations=tuple(
            replace(c, scheduled=c.scheduled + busy[i], running=busy[i]) if i in busy else c
            for i, c in enumerate(stages[-1].combinations)))
        return stages, analysis.order, analysis.views[current].done and not busy

    def stages(self, history: Sequence[Trial]) -> tuple[list[Stage], tuple[str, ...] | None]:
        """The stages so far (the last may be incomplete) and the order used (None while piloting)."""
        stages, order, _ = self.progress(history)
        return stages, order

    def winner(self, history: Sequence[Trial]) -> Combination | None:
        """The best combination of the last stage, once the study is done."""
        return self._winner(*self.progress(history))

    @staticmethod
    def _winner(stages: list[Stage], order: tuple[str, ...] | None, complete: bool) -> Combination | None:
        if order is None or len(stages) < len(order) - 1 or not complete:
            return None
        return min(stages[-1].combinations, key=lambda c: c.mean, default=None)

    # -- proposing -------------------------------------------------------------------------------

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        analysis, running = self._read(history)
        if analysis.order is None or running[PILOT, ""]:
            return self._pilot(history, numbers)
        current, extra = self._current(analysis, running)
        stage, view = analysis.stages[current], analysis.views[current]
        if view.done and not extra and (stage.number == len(analysis.order) - 1 or not view.survivors):
            return Decision(finished=True)
        cap, ranked, first = self._plan().n_samples, view.ranked, 0
        proposals = []
        for number in numbers:  # the combination with the fewest samples scheduled, first in stage order on ties
            while first < len(ranked) and ranked[first] in extra:
                first += 1
            best = (view.scheduled[ranked[first]], ranked[first]) if first < len(ranked) else None
            for i, more in extra.items():
                if view.wants[i] and view.scheduled[i] + more < cap and (best is None
                                                                         or (view.scheduled[i] + more, i) < best):
                    best = (view.scheduled[i] + more, i)
            if best is None:
                break
            chosen = stage.combinations[best[1]]
            extra[best[1]] = extra.get(best[1], 0) + 1
            params = self.space.sample(self.rng(number), given=chosen.fixed)
            proposals.append(Proposal(params, {"stage": str(stage.number), "combination": chosen.key}))
        return Decision(proposals)

    def _pilot(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        started = sum(t.tags.get("stage") == str(PILOT) for t in history)
        count = max(0, min(len(numbers), self.pilot_trials - started))
        return Decision([Proposal(self.space.sample(self.rng(number)), {"stage": str(PILOT)})
                         for number in numbers[:count]])

    # -- explaining ------------------------------------------------------------------------------

    def snapshot(self, history: Sequence[Trial]) -> TSamplingSnapshot:
        """What the files show for ``history``, read on a ledger of its own, not on the one ``propose`` updates."""
        ledger = Ledger(self.direction)
        ledger.update(history)
        stages, order, complete = self._progress(self._analyse(ledger, {}), in_flight(history))
        judged = []
        for stage in stages:
            samples = Samples.of(stage.combinations)
            p = probabilities(samples.n, samples.mean, samples.sd, criterion(samples, LEAST_SAMPLES), self.scale)
            kept = tuple(stage.combinations[i].key for i in surviving(samples, stage.keep, self.alpha, self.scale))
            judged.append(Judged(stage, tuple(p.tolist()), kept))
        return TSamplingSnapshot(order, tuple(judged), complete, self._winner(stages, order, complete), len(history),
                                 self.alpha, self.direction)

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Per stage: the table of Tables 2-3 (mean, sd, n, probability, decision) and a heatmap.

        Drawn from a ``TSamplingSnapshot`` of ``history`` alone, beside ``propose`` (see ``Strategy.artifacts``).
        """
        return tables.artifacts(self.snapshot(history))
