"""What t_sampling's files are drawn from: frozen values, so that ``artifacts`` may run beside ``propose``.

The driver renders a strategy's files in a background thread while the main thread goes on proposing (see
``Strategy.artifacts``), and ``propose`` updates the strategy's ledger and stage caches in place. ``tables``
is therefore a function of a ``TSamplingSnapshot`` alone, never of the strategy: ``TSampling.snapshot``
reads the history it is given on a ledger of its own and judges each stage with the Student-t model, and
nothing in the snapshot changes afterwards. The strategy imports this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo_tune.strategies.t_sampling.stages import Combination, Stage
from hpo_tune.trial import Direction


@dataclass(frozen=True)
class Judged:
    """A stage with what the model says of it: P(loss < criterion) per combination, in stage order, and the keys
    of the survivors the budget lets it pass on."""

    stage: Stage
    probabilities: tuple[float, ...]
    survivors: tuple[str, ...]


@dataclass(frozen=True)
class TSamplingSnapshot:
    """One history's stages as ``TSampling.progress`` reads them, judged, with the settings the files show."""

    order: tuple[str, ...] | None  # None while piloting
    stages: tuple[Judged, ...]  # those before the last are complete
    complete: bool  # whether the last is
    winner: Combination | None  # once the study is done
    trainings: int  # trials in the history
    alpha: float
    direction: Direction
