"""Seed 001's per-epoch mode (its Fig. 8): a fresh search over the learning rate at every epoch.

At epoch ``e`` an inner strategy (gamma_bo by default) proposes ``C`` candidates (its
``max_trials``); each trains one epoch from the weights the previous epoch chose, as its own trial,
and the best candidate's weights carry on to epoch ``e + 1``. Trial ``k`` is candidate ``k % C`` of
epoch ``k // C + 1``; epoch ``e + 1`` starts only when every candidate of epoch ``e`` has finished.

The strategy never holds weights. Each proposal carries the tags ``epoch`` and ``lineage``: the
parameters and training seeds of the winners of the epochs before (JSON, oldest first), which
pins down the starting weights exactly: the objective keeps recent weights in memory and, after a
resume, re-trains the lineage from the initial weights (deterministic on a CPU). Only the optimiser
state is not carried: every candidate starts a fresh optimiser (momentum buffers reset), as
weights are what the paper carries. The inner strategy sees its epoch's candidates numbered
``0 .. C-1`` and is seeded per epoch, so each epoch draws new initial points.

The schedule it finds (the winning parameters per epoch) is logged as ``per_epoch/schedule.csv``
and ``per_epoch/schedule.png`` on the study's parent run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hpo_tune.errors import ConfigError
from hpo_tune.plots import png, pyplot
from hpo_tune.space import SearchSpace
from hpo_tune.strategies.base import Decision, Strategy
from hpo_tune.trial import Direction, Proposal, Trial, TrialState, best_trial, trial_seed


class PerEpoch(Strategy):
    name = "per_epoch"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, inner: str = "gamma_bo",
                 epochs: int = 5, inner_options: Mapping[str, Any] | None = None):
        super().__init__(space, seed, direction)
        space.refuse_conditions("per_epoch", "schedules every dimension in every epoch")
        for name in space:
            if not name.startswith("trainer."):
                raise ConfigError(f"space.{name}", "per_epoch carries weights between epochs, so it can only tune "
                                                   "trainer settings (a learning rate, ...), not the model")
        if epochs < 1:
            raise ConfigError("strategy.epochs", f"must be >= 1, got {epochs}")
        self.epochs = epochs
        self.inner_name, self.inner_options = inner, dict(inner_options or {})
        candidates = self._inner(1).max_trials()
        if candidates is None:
            raise ConfigError("strategy.inner", f"{inner!r} has no trial budget of its own; use a bounded strategy "
                                                "(the BOs: set inner_options.n_iterations)")
        self.candidates = candidates

    def _inner(self, epoch: int) -> Strategy:
        from hpo_tune.strategies import make_strategy  # the registry imports this module

        return make_strategy(self.inner_name, self.space, trial_seed(self.seed, epoch), self.direction,
                             self.inner_options)

    def max_trials(self) -> int:
        return self.epochs * self.candidates

    def winners(self, history: Sequence[Trial]) -> list[Trial]:
        """The best candidate of each epoch whose candidates have all finished, in epoch order."""
        chosen = []
        for epoch in range(1, self.epochs + 1):
            mine = self._of_epoch(history, epoch)
            if len(mine) < self.candidates or any(t.state is TrialState.RUNNING for t in mine):
                break
            best = best_trial(mine, self.direction)
            if best is None:
                break
            chosen.append(best)
        return chosen

    def _of_epoch(self, history: Sequence[Trial], epoch: int) -> list[Trial]:
        return [t for t in history if t.tags.get("epoch") == str(epoch)]

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        winners = self.winners(history)
        epoch = len(winners) + 1  # the one epoch that can take candidates now
        ran = self._of_epoch(history, epoch)
        if epoch > self.epochs or (len(ran) == self.candidates and all(t.finished for t in ran)):
            return Decision(finished=True)  # every epoch ran, or no candidate of this one completed
        offset = (epoch - 1) * self.candidates
        inner = self._inner(epoch)
        seen = [dataclasses.replace(t, number=t.number - offset) for t in ran]
        lineage = json.dumps([[w.params, trial_seed(self.seed, w.number)] for w in winners])
        proposals: list[Proposal] = []
        for number in numbers:
            if number // self.candidates + 1 != epoch:
                break  # a later epoch waits for this one's candidates
            decided = inner.propose(seen, [number - offset]).proposals
            if not decided:
                break  # the inner strategy waits for running candidates
            proposals.append(Proposal(decided[0].params, {"epoch": str(epoch), "lineage": lineage}))
            seen.append(Trial(number - offset, decided[0].params, TrialState.RUNNING))
        return Decision(proposals)

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        winners = self.winners(history)
        if not winners:
            return {}
        table = pd.DataFrame([{"epoch": e, **w.params, "objective": w.value, "trial": w.number}
                              for e, w in enumerate(winners, start=1)])
        return {"per_epoch/schedule.csv": table.to_csv(index=False), "per_epoch/schedule.png": self._plot(table)}

    def _plot(self, table: pd.DataFrame) -> bytes:
        plt = pyplot()
        names = list(self.space)
        fig, axes = plt.subplots(len(names) + 1, 1, sharex=True, figsize=(6, 2 + 1.6 * len(names)))
        for ax, name in zip(axes, names):
            ax.plot(table["epoch"], table[name], marker="o")
            ax.set_ylabel(name)
        axes[-1].plot(table["epoch"], table["objective"], marker="o", color="tab:green")
        axes[-1].set_ylabel("objective")
        axes[-1].set_xlabel("epoch")
        axes[0].set_title(f"per-epoch schedule found by {self.inner_name}")
        return png(fig)
