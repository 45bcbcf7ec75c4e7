"""The one interface every strategy implements.

A strategy is a pure function of the study's history: given the trials read back from the
tracking store and the trial numbers the driver wants filled, it returns what to run. It keeps no
state between calls that MLflow does not have, which is what makes a killed study resumable and
lets several workers feed one study. Trial numbers seed per-trial randomness, so a trial that was
interrupted (and is therefore absent from the history) is proposed again with the same parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hpo_tune.space import SearchSpace
from hpo_tune.trial import Direction, Proposal, Trial


@dataclass(frozen=True)
class Decision:
    """Proposals for some of the requested numbers, in order; ``finished`` ends the study."""

    proposals: list[Proposal] = field(default_factory=list)
    finished: bool = False


class Strategy(ABC):
    """Decides what to run next from the history alone; deterministic for a seed and a history.

    **Threading.** The driver calls ``artifacts`` in a background thread while the main thread may be in
    ``propose``, so ``artifacts(history)`` must give the same files whatever ``propose`` does meanwhile: it
    reads only the history it is given and immutable snapshots (a frozen value ``propose`` left, replaced whole
    and never changed, read once), never working state that ``propose`` changes in place (a cache, a ledger),
    and writes nothing ``propose`` reads. Its tables and plots are functions of such a snapshot, not of the
    strategy. Settings fixed before the study (``__init__``, ``fit_budget``) may be read from both.
    """

    name: str = ""
    budget_note: str | None = None  # what the budget changed in the plan, set when it is built (``make_strategy``)

    def __init__(self, space: SearchSpace, seed: int, direction: Direction):
        self.space = space
        self.seed = seed
        self.direction = direction
        self.directions = (direction,)  # a study of several objectives: theirs, in order (set by ``make_strategy``)

    @abstractmethod
    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        """Parameter sets for trials ``numbers`` (fewer, even none, if it must wait for results)."""

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Tables and plots explaining the decisions so far, logged on the study's parent run.

        File name -> text (CSV, markdown) or bytes (PNG). Called when trials have finished, at most
        every ``hpo_tune.explainer.ARTIFACT_INTERVAL_S`` seconds and at the end of the study; only changed files are
        uploaded again. It runs in the driver's background thread, beside ``propose``, never beside
        itself: see the class's threading rule.
        """
        return {}

    def max_trials(self) -> int | None:
        """How many trials the strategy needs at most; None when it would go on for ever."""
        return None

    def fit_budget(self, n_trials: int) -> str | None:
        """Fit the plan to ``n_trials`` before the study starts; a one-line note when the plan changed for it.

        Strategies whose plan has a size (stages, a design) choose it here so that it finishes within
        the budget, or raise ``ConfigError("n_trials", ...)`` naming the minimum when no plan fits: a
        budget that would only spend trainings is refused instead of run. Not called for unlimited
        budgets. The plan follows the budget, so resuming a study with another ``n_trials`` may change
        what its remaining trials run.
        """
        return None  # any budget will do unless a strategy says otherwise

    def rng(self, number: int) -> np.random.Generator:
        """A generator owned by one trial number, so its draws do not depend on what ran before."""
        return np.random.default_rng([self.seed, number])
