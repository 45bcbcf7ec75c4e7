"""Pruners: stop a running trial whose learning curve is clearly worse than its siblings'.

A pruner is consulted each time a trial reports an epoch (in whichever worker runs it). It reads
the study's finished trials back through the reader its worker holds (``src.storage.base.StudyReader``;
in MLflow each trial carries its objective curve as one tag, so one incremental query covers them all)
and compares the running trial's value at this epoch with theirs at the same epoch, once at least
``min_trials`` siblings reached it and ``warmup`` epochs have passed:

- ``median``: prune when the value is worse than the siblings' median (Optuna's MedianPruner).
- ``t_test``: seed 000's survival rule applied to intermediate values. The criterion is the best
  sibling value at this epoch; the trial's eventual value is modelled as a Student-t located at its
  current value with the siblings' spread as scale (``s * sqrt(1 + 1/n)``, n - 1 degrees of
  freedom); the trial is pruned when P(value < criterion) < ``alpha``, i.e. when even an optimistic
  draw of the usual epoch-to-epoch spread would not bring it level with the best sibling.

Pruned trials end with MLflow status KILLED (state PRUNED) and keep their curve. Strategies treat
them as they treat failed trials: no value (the BOs count them as the worst value seen, t-sampling
as a sample without a value, the factorial leaves them out of its fit, TPE receives them as pruned).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scipy import stats

from src.errors import ConfigError
from src.trial import Direction

if TYPE_CHECKING:
    from src.storage.base import StudyReader

PRUNERS = ("none", "median", "t_test")


@dataclass(frozen=True)
class Pruner:
    """What to prune; picklable, so it travels with each trial to its worker."""

    name: str = "none"
    warmup: int = 1  # epochs reported before the first decision
    min_trials: int = 3  # finished siblings needed at an epoch before comparing with them
    alpha: float = 0.05  # t_test only

    def __post_init__(self) -> None:
        if self.name not in PRUNERS:
            raise ConfigError("pruner.name", f"unknown pruner {self.name!r}; use one of {list(PRUNERS)}")
        if self.warmup < 0 or self.min_trials < 2:
            raise ConfigError("pruner", f"needs warmup >= 0 and min_trials >= 2, got {self.warmup}, {self.min_trials}")
        if not 0 < self.alpha < 1:
            raise ConfigError("pruner.alpha", f"must be in (0, 1), got {self.alpha}")

    @property
    def active(self) -> bool:
        return self.name != "none"

    def verdict(self, value: float, siblings: list[float], direction: Direction) -> str | None:
        """Why a trial with ``value`` should stop given its siblings' values at the same epoch, or None."""
        if len(siblings) < self.min_trials or not math.isfinite(value):
            return None
        mine, theirs = direction.loss(value), [direction.loss(v) for v in siblings]
        if self.name == "median":
            median = statistics.median(theirs)
            if mine <= median:
                return None
            return f"{value:.4g} is worse than the siblings' median {direction.loss(median):.4g}"
        n, best = len(theirs), min(theirs)
        spread = statistics.stdev(theirs) * math.sqrt(1 + 1 / n)
        chance = float(stats.t.cdf(best, df=n - 1, loc=mine, scale=spread)) if spread > 0 else float(mine <= best)
        return (f"P({value:.4g} beats the best sibling {direction.loss(best):.4g}) = {chance:.3g} < {self.alpha}"
                if chance < self.alpha else None)

    def check(self, reader: StudyReader, direction: Direction, number: int, epoch: int, value: float) -> str | None:
        """Read the siblings back through ``reader`` and decide for trial ``number`` at ``epoch``."""
        if not self.active or epoch < self.warmup:
            return None
        siblings = [t.curve[epoch] for t in reader.history() if t.finished and t.number != number and epoch in t.curve]
        return self.verdict(value, siblings, direction)
