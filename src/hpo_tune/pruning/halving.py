"""Successive halving (ASHA) and Hyperband: which epochs are rungs, which bracket a trial is in, who goes on.

A *rung* is an epoch at which a trial's value is compared with every value recorded at that epoch so
far (by any trial of the study, in any process: the values are tags of the trial runs, ``rung.<epoch>``).
Rungs sit at ``min_resource * eta**k`` epochs below ``max_resource``; a trial that passes the last one
trains to ``max_resource`` (or its own last epoch) and completes.

- ``stop`` mode (Optuna's ``SuccessiveHalvingPruner``, Ray's ``ASHAScheduler``): a trial goes on past a
  rung when it is among the best ``max(1, n // eta)`` of the ``n`` values recorded there, its own
  included; otherwise it is pruned. The first trials to reach a rung always go on, as in Optuna.
- ``promote`` mode (ASHA as published, Li et al. 2020, Algorithm 2): every trial pauses at each rung,
  checkpointed; a driver with a free worker first resumes a paused trial that is among the best
  ``n // eta`` of its rung (the highest rungs first), and only then starts a new configuration. Once
  the budget of configurations is spent, a rung's best goes on even when fewer than ``eta`` values are
  recorded there (the study's last ones would otherwise wait for trials that never come).

Hyperband (Li et al. 2018) runs ``s_max + 1`` brackets of successive halving, bracket ``s`` starting at
``min_resource * eta**(s_max - s)`` epochs, so bracket ``s_max`` is the most aggressive and bracket 0
trains every trial fully. Trials compete only within their bracket. A trial's bracket is a function of
the study seed and its number alone (the brackets' shares as in the paper, ``ceil((s_max + 1) / (s + 1)
* eta**s)`` configurations each, in an order shuffled by the seed and repeated), so every process, and
a resumed study, puts it in the same bracket (Optuna's hashing did not: optuna#3083).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from hpo_tune.trial import Direction, Trial

MODES = ("stop", "promote")


@dataclass(frozen=True)
class Halving:
    """The rungs and brackets of an ASHA (``hyperband=False``) or Hyperband study."""

    min_resource: int
    max_resource: int
    eta: int = 3
    hyperband: bool = False
    mode: str = "stop"

    @functools.cached_property
    def s_max(self) -> int:
        """How many times ``eta`` fits between the least and the most epochs (integer arithmetic: no float error)."""
        steps, epochs = 0, self.min_resource * self.eta
        while epochs <= self.max_resource:
            steps, epochs = steps + 1, epochs * self.eta
        return steps

    @property
    def brackets(self) -> int:
        return self.s_max + 1 if self.hyperband else 1

    def bracket(self, number: int, seed: int) -> int:
        """Trial ``number``'s bracket: the same in every process and after a resume."""
        if not self.hyperband:
            return self.s_max
        schedule = _schedule(self.s_max, self.eta, seed)
        return schedule[number % len(schedule)]

    def rungs(self, bracket: int) -> list[int]:
        """The epochs at which trials of ``bracket`` are compared (below ``max_resource``)."""
        epochs, rungs = self.min_resource * self.eta ** (self.s_max - bracket), []
        while epochs < self.max_resource:
            rungs.append(epochs)
            epochs *= self.eta
        return rungs

    def rungs_of(self, number: int, seed: int) -> list[int]:
        return self.rungs(self.bracket(number, seed))

    def best(self, recorded: Mapping[int, float], direction: Direction, promote: bool) -> list[int]:
        """The trial numbers among the best of ``recorded`` (number -> value at one rung): ``n // eta`` of
        them when promoting, at least one when stopping; the lower number wins a tie."""
        ranked = sorted(recorded, key=lambda number: (_loss(recorded[number], direction), number))
        keep = len(ranked) // self.eta
        return ranked[: keep if promote else max(keep, 1)]

    def verdict(self, number: int, epoch: int, value: float, recorded: Mapping[int, float],
                direction: Direction) -> str | None:
        """Why trial ``number`` stops at rung ``epoch`` (stop mode), given every value recorded there, or None."""
        recorded = {**recorded, number: value}
        if not math.isfinite(value):
            return f"{value} at rung {epoch}"
        kept = self.best(recorded, direction, promote=False)
        if number in kept:
            return None
        cut = recorded[kept[-1]]
        return (f"rung {epoch}: {value:.4g} is not among the best {len(kept)} of {len(recorded)} values "
                f"recorded there (the cut is {cut:.4g})")

    def promotions(self, history: list[Trial], recorded: Mapping[int, Mapping[int, float]], seed: int,
                   direction: Direction, draining: bool = False) -> list[tuple[Trial, int]]:
        """Paused trials that are now among the best ``n // eta`` of their rung, each with that rung's epoch:
        the highest rungs first (ASHA's order), the best first within a rung. ``recorded`` holds every value
        at each rung epoch (epoch -> number -> value), running trials' included. ``draining``: no new
        configuration will come (the budget is spent), so each rung's best goes on even below ``eta`` values,
        and a finite study ends with complete trials rather than a rung of paused ones."""
        waiting: dict[tuple[int, int], list[Trial]] = {}
        for trial in history:
            if trial.paused and trial.rungs:
                epoch = max(trial.rungs)
                waiting.setdefault((self.bracket(trial.number, seed), epoch), []).append(trial)
        chosen: list[tuple[Trial, int]] = []
        for (bracket, epoch), trials in sorted(waiting.items(), key=lambda item: -item[0][1]):
            values = {n: v for n, v in recorded.get(epoch, {}).items() if self.bracket(n, seed) == bracket}
            best = self.best(values, direction, promote=not draining)
            order = {number: rank for rank, number in enumerate(best)}
            chosen += [(t, epoch) for t in sorted(trials, key=lambda t: order.get(t.number, 0)) if t.number in order]
        return chosen


def _loss(value: float, direction: Direction) -> float:
    """The value to minimise; a diverged (non-finite) value ranks last."""
    return direction.loss(value) if math.isfinite(value) else math.inf


@functools.cache
def _schedule(s_max: int, eta: int, seed: int) -> tuple[int, ...]:
    """One Hyperband iteration's brackets, one entry per configuration, shuffled by ``seed``."""
    brackets = [s for s in range(s_max + 1) for _ in range(math.ceil((s_max + 1) / (s + 1) * eta**s))]
    random.Random(seed).shuffle(brackets)
    return tuple(brackets)
