"""Stage bookkeeping: combinations, stages, and what the finished trials say about them.

A proposal must not cost a pass over every combination of every stage per finished trial: the
``Ledger`` groups finished trials by (stage, combination) and takes in only the trials that changed
since the last call, a combination's values are summarised once per change of its own group, and a
stage's arrays are patched where its combinations changed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hpo_tune.space import Params
from hpo_tune.trial import Direction, Trial, TrialState

PILOT = 0  # the stage number of the pilot trials for sensitivity ordering


def key_of(fixed: Params) -> str:
    """A combination's ``combination`` tag: its fixed values in order."""
    return "|".join(f"{k}={v}" for k, v in fixed.items())


@dataclass(frozen=True)
class Combination:
    """Fixed values of the hyperparameters considered so far, with what its samples gave."""

    fixed: Params
    losses: tuple[float, ...] = ()
    scheduled: int = 0  # finished, failed, running or pending samples
    running: int = 0

    @cached_property
    def key(self) -> str:
        return key_of(self.fixed)

    @cached_property
    def mean(self) -> float:
        return math.fsum(self.losses) / len(self.losses) if self.losses else math.inf

    @cached_property
    def sd(self) -> float:
        if len(self.losses) < 2:
            return math.nan
        return math.sqrt(math.fsum((x - self.mean) ** 2 for x in self.losses) / (len(self.losses) - 1))


@dataclass(frozen=True)
class Stage:
    """One stage's combinations; ``keep`` is how many survivors the budget lets it pass on (None: all)."""

    number: int
    names: tuple[str, ...]  # hyperparameters fixed in this stage, in order
    combinations: tuple[Combination, ...]
    keep: int | None = None


@dataclass(frozen=True)
class Samples:
    """A stage's combinations as arrays: samples scheduled, values, their mean and sd."""

    scheduled: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def of(cls, combinations: Sequence[Combination]) -> Samples:
        size = len(combinations)
        return cls(np.fromiter((c.scheduled for c in combinations), int, size),
                   np.fromiter((len(c.losses) for c in combinations), int, size),
                   np.fromiter((c.mean for c in combinations), float, size),
                   np.fromiter((c.sd for c in combinations), float, size))

    def updated(self, changed: Mapping[int, Combination]) -> Samples:
        """A copy with the combinations at the given indices replaced."""
        at, new = np.fromiter(changed, int, len(changed)), Samples.of(list(changed.values()))
        arrays = {name: getattr(self, name).copy() for name in ("scheduled", "n", "mean", "sd")}
        for name, array in arrays.items():
            array[at] = getattr(new, name)
        return Samples(**arrays)


def in_flight(history: Sequence[Trial]) -> Counter[tuple[int, str]]:
    """The running trials per (stage, combination)."""
    running = TrialState.RUNNING
    return Counter((int(t.tags["stage"]), t.tags.get("combination", ""))
                   for t in history if t.state is running and "stage" in t.tags)


def criterion(samples: Samples, minimum: int) -> float:
    """The lowest mean loss among combinations with at least ``minimum`` values."""
    return float(samples.mean[samples.n >= minimum].min(initial=math.inf))


class Ledger:
    """Finished trials grouped by (stage, combination), updated with only what changed since the last call.

    ``changes[stage]`` logs the combination of every trial taken in or dropped (a retried trial leaves
    the history), so a stage's arrays can be brought up to date from where they were built.
    """

    def __init__(self, direction: Direction):
        self.direction = direction
        self.seen: dict[tuple, tuple[int, str] | None] = {}  # trial identity -> its (stage, combination)
        self.groups: dict[tuple[int, str], dict[tuple[int, str], float | None]] = {}
        self.totals: Counter[int] = Counter()  # finished trials per stage
        self.changes: dict[int, list[str]] = {}
        self.pilot: dict[tuple[int, str], Trial] = {}
        self.summaries: dict[tuple[int, str], Combination] = {}

    def update(self, history: Sequence[Trial]) -> bool:
        """Take in the finished trials of ``history``; whether anything changed."""
        running, complete = TrialState.RUNNING, TrialState.COMPLETE
        trials = {(t.number, t.run_id, t.state is complete, t.value): t for t in history if t.state is not running}
        if trials.keys() == self.seen.keys():
            return False
        for identity in self.seen.keys() - trials.keys():
            self._drop(identity)
        for identity in trials.keys() - self.seen.keys():
            self._add(identity, trials[identity])
        return True

    def _add(self, identity: tuple, trial: Trial) -> None:
        self.seen[identity] = None
        if "stage" not in trial.tags:
            return
        stage = int(trial.tags["stage"])
        if stage == PILOT:
            self.pilot[trial.number, trial.run_id] = trial
            self.seen[identity] = PILOT, ""
            return
        group = self.seen[identity] = stage, trial.tags.get("combination", "")
        valid = trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)
        self.groups.setdefault(group, {})[trial.number, trial.run_id] = (self.direction.loss(trial.value) if valid
                                                                          else None)
        self._changed(group, +1)

    def _drop(self, identity: tuple) -> None:
        group = self.seen.pop(identity)
        if group is None:
            return
        if group[0] == PILOT:
            del self.pilot[identity[:2]]
            return
        del self.groups[group][identity[:2]]
        self._changed(group, -1)

    def _changed(self, group: tuple[int, str], count: int) -> None:
        self.totals[group[0]] += count
        self.changes.setdefault(group[0], []).append(group[1])
        self.summaries.pop(group, None)

    def combination(self, stage: int, fixed: Params, key: str) -> Combination:
        """A candidate's finished samples: values in trial order, and how many there were."""
        summary = self.summaries.get((stage, key))
        if summary is None:
            group = self.groups.get((stage, key), {})
            losses = tuple(v for _, v in sorted(group.items()) if v is not None)
            summary = self.summaries[stage, key] = Combination(fixed, losses, len(group))
        return summary

    def pilot_trials(self) -> list[Trial]:
        return [self.pilot[k] for k in sorted(self.pilot)]
