"""Random search: every trial an independent draw from the space."""

from __future__ import annotations

from collections.abc import Sequence

from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Proposal, Trial


class RandomSearch(Strategy):
    """Draws trial ``k`` from a generator seeded by (seed, k): same seed, same trials, any order."""

    name = "random"

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        return Decision([Proposal(self.space.sample(self.rng(k))) for k in numbers])
