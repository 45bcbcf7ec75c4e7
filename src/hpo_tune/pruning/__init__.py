"""Pruners: stop (or pause) a running trial whose learning curve is not worth finishing.

A pruner is consulted each time a trial reports an epoch, in whichever worker runs it, and reads the
study back through the reader that worker holds (``hpo_tune.storage.base.StudyReader``). Two families:

**Curve pruners** compare the trial's value at this epoch with its finished siblings' values at the
same epoch (in MLflow each trial carries its objective curve as one tag, so one incremental query
covers them all), once at least ``min_trials`` siblings reached it and ``warmup`` epochs have passed:

- ``median``: prune when the value is worse than the siblings' median (Optuna's MedianPruner).
- ``t_test``: seed 000's survival rule applied to intermediate values. The criterion is the best
  sibling value at this epoch; the trial's eventual value is modelled as a Student-t located at its
  current value with the siblings' spread as scale (``s * sqrt(1 + 1/n)``, n - 1 degrees of
  freedom); the trial is pruned when P(value < criterion) < ``alpha``, i.e. when even an optimistic
  draw of the usual epoch-to-epoch spread would not bring it level with the best sibling.

**Multi-fidelity pruners** compare at rungs only, with every value recorded there, running trials'
included (``hpo_tune.pruning.halving``): ``asha`` (asynchronous successive halving) and ``hyperband``
(brackets of it), each in ``stop`` mode (prune) or ``promote`` mode (pause, checkpointed, and resume
the best later: ASHA as published).

Pruned trials end with MLflow status KILLED (state PRUNED) and keep their curve; paused ones too, with
the tag ``state=PAUSED`` until they are resumed. Strategies treat them as they treat failed trials: no
value (the BOs count them as the worst value seen, t-sampling as a sample without a value, the
factorial leaves them out of its fit, TPE receives them as pruned), unless a strategy fits the rungs
(``fidelity: rungs``, BOHB's rule).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo_tune.errors import ConfigError
from hpo_tune.pruning.halving import MODES, Halving
from hpo_tune.trial import Direction

if TYPE_CHECKING:
    from hpo_tune.storage.base import StudyReader

PRUNERS = ("none", "median", "t_test", "asha", "hyperband")
HALVING = ("asha", "hyperband")


@dataclass(frozen=True)
class Pruner:
    """What to prune; picklable, so it travels with each trial to its worker."""

    name: str = "none"
    warmup: int = 1  # epochs reported before the first decision (curve pruners)
    min_trials: int = 3  # finished siblings needed at an epoch before comparing with them (curve pruners)
    alpha: float = 0.05  # t_test only
    min_resource: int = 1  # asha, hyperband: epochs before the first rung
    max_resource: int | None = None  # asha, hyperband: the most epochs a trial trains (the CLI: trainer.epochs)
    reduction_factor: int = 3  # asha, hyperband: eta, 1/eta of a rung goes on
    mode: str = "stop"  # asha, hyperband: stop (prune at a rung) or promote (pause there, resume the best)

    def __post_init__(self) -> None:
        if self.name not in PRUNERS:
            raise ConfigError("pruner.name", f"unknown pruner {self.name!r}; use one of {list(PRUNERS)}")
        if self.warmup < 0 or self.min_trials < 2:
            raise ConfigError("pruner", f"needs warmup >= 0 and min_trials >= 2, got {self.warmup}, {self.min_trials}")
        if not 0 < self.alpha < 1:
            raise ConfigError("pruner.alpha", f"must be in (0, 1), got {self.alpha}")
        if self.name in HALVING:
            self._check_halving()

    def _check_halving(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("pruner.mode", f"must be one of {list(MODES)}, got {self.mode!r}")
        for key in ("min_resource", "reduction_factor"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "min_resource" else 2):
                raise ConfigError(f"pruner.{key}", f"must be an integer >= {1 if key == 'min_resource' else 2}, "
                                                   f"got {value!r}")
        if self.max_resource is None:
            raise ConfigError("pruner.max_resource", f"{self.name} needs the most epochs a trial trains "
                                                     "(max_resource=...)")
        if isinstance(self.max_resource, bool) or not isinstance(self.max_resource, int) or \
                self.max_resource <= self.min_resource:
            raise ConfigError("pruner.max_resource", f"must be an integer above min_resource ({self.min_resource}), "
                                                     f"got {self.max_resource!r} (the CLI's default: trainer.epochs)")

    @property
    def active(self) -> bool:
        return self.name != "none"

    @functools.cached_property
    def halving(self) -> Halving | None:
        """The rungs and brackets of a multi-fidelity pruner (built once); None for the others."""
        if self.name not in HALVING:
            return None
        assert self.max_resource is not None  # checked when built
        return Halving(self.min_resource, self.max_resource, self.reduction_factor, self.name == "hyperband",
                       self.mode)

    @property
    def promotes(self) -> bool:
        """Whether trials pause at rungs and drivers resume the best of them."""
        return self.name in HALVING and self.mode == "promote"

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
        from scipy import stats  # here: most studies never run a t-test, and scipy.stats costs a start-up

        chance = float(stats.t.cdf(best, df=n - 1, loc=mine, scale=spread)) if spread > 0 else float(mine <= best)
        return (f"P({value:.4g} beats the best sibling {direction.loss(best):.4g}) = {chance:.3g} < {self.alpha}"
                if chance < self.alpha else None)

    def check(self, reader: StudyReader, direction: Direction, number: int, epoch: int, value: float,
              seed: int = 0) -> str | None:
        """Read the siblings back through ``reader`` and decide for trial ``number`` at ``epoch`` (a stop-mode
        multi-fidelity pruner decides at its rungs only, from every value recorded there)."""
        halving = self.halving
        if halving is not None:
            bracket = halving.bracket(number, seed)
            if halving.mode != "stop" or epoch not in halving.rungs(bracket):
                return None
            recorded = {n: v for n, v in reader.rung_values(epoch).items()
                        if n != number and halving.bracket(n, seed) == bracket}
            return halving.verdict(number, epoch, value, recorded, direction)
        if not self.active or epoch < self.warmup:
            return None
        siblings = [t.curve[epoch] for t in reader.history() if t.finished and t.number != number and epoch in t.curve]
        return self.verdict(value, siblings, direction)
