"""Staged Student-t sampling (seed 000: "Hyper Parameter Tuning Method based on Sampling for Optimal
LSTM Model").

Hyperparameters are taken in a fixed order, each with a few conditions (a choice dimension).
Stage 1 forms every combination of the first two; each combination is evaluated by ``n_samples``
trainings in which every hyperparameter not yet fixed is drawn at random from its conditions. The
criterion is the lowest mean loss over the stage's combinations; a combination survives when
P(loss < criterion) >= ``alpha`` under a Student-t model of its samples. Survivors are crossed with
the next hyperparameter's conditions, and so on until all are fixed; the combination of the last
stage with the lowest mean wins.

The Student-t model (``scale``): location = the sample mean, ``n - 1`` degrees of freedom, and
scale either the standard error ``s / sqrt(n)`` (``standard_error``, default) or the predictive
scale ``s * sqrt(1 + 1/n)`` of one new training (``predictive``). The paper's Table 3 points to
the standard error: its probabilities for gold, e.g. 0.0238 for a combination whose mean is 0.0512
above the criterion (Table 2) with n = 20, imply a scale of about 0.024, i.e. a per-training
spread s of about 0.11 under the standard error but only 0.024 under the predictive reading, and
spreads of 0.024 are implausible when the means of the combinations themselves differ by up to 0.11.
The criterion's own combination gets exactly 0.5, as in Table 3.

Everything is computed from the history: each trial carries the tags ``stage`` and
``combination``; a stage is complete when each of its combinations has its samples finished.
Failed trials use up a sample but give no value; a combination with fewer than two values has no
spread to model and is dropped.

Beyond the paper (options, off by default):

- ``sequential``: stop sampling a combination as soon as, with at least ``min_samples`` values,
  its probability is below ``alpha`` against the current criterion; it keeps its samples and is
  judged again at the stage's end. Combinations are sampled round-robin, so they reach
  ``min_samples`` together.
- ``order_by: sensitivity``: first run ``pilot_trials`` trainings with every hyperparameter drawn at
  random, then order the hyperparameters by sensitivity (the range of their conditional mean
  losses, largest first), so the first stages prune on the factors that matter most.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from src.errors import ConfigError
from src.plots import png, pyplot
from src.space import Choice, Params, SearchSpace
from src.strategies.base import Decision, Strategy
from src.trial import Direction, Proposal, Trial, TrialState

PILOT = 0  # the stage number of the pilot trials for sensitivity ordering
# The command lines whose spaces are all choices (conf/space/lstm.yaml, Table 1 of seed 000), named when
# a space does not fit; a test checks that each of them validates with strategy=t_sampling.
SUITED = ("experiment=seed000_gold", "experiment=seed000_bdi", "space=lstm model=lstm dataset=gold",
          "space=lstm model=lstm dataset=bdi")


@dataclass(frozen=True)
class Combination:
    """Fixed values of the hyperparameters considered so far, with what its samples gave."""

    fixed: Params
    losses: tuple[float, ...] = ()
    scheduled: int = 0  # finished, failed, running or pending samples
    running: int = 0

    @property
    def key(self) -> str:
        return "|".join(f"{k}={v}" for k, v in self.fixed.items())

    @property
    def mean(self) -> float:
        return float(np.mean(self.losses)) if self.losses else math.inf

    @property
    def sd(self) -> float:
        return float(np.std(self.losses, ddof=1)) if len(self.losses) > 1 else math.nan


@dataclass(frozen=True)
class Stage:
    number: int
    names: tuple[str, ...]  # hyperparameters fixed in this stage, in order
    combinations: tuple[Combination, ...]


class TSampling(Strategy):
    name = "t_sampling"

    def __init__(self, space: SearchSpace, seed: int, direction: Direction, order: Sequence[str] | None = None,
                 n_samples: int = 20, alpha: float = 0.05, scale: str = "standard_error", sequential: bool = False,
                 min_samples: int = 5, order_by: str = "config", pilot_trials: int = 0):
        super().__init__(space, seed, direction)
        for name, dim in space.items():
            if not isinstance(dim, Choice):
                raise ConfigError(f"space.{name}", "t_sampling needs choice dimensions (the conditions), not a numeric "
                                                   f"range; use a space of choices, e.g. {', '.join(SUITED)}")
        self.order = tuple(order) if order else tuple(space)
        if sorted(self.order) != sorted(space) or len(space) < 2:
            raise ConfigError("strategy.order", f"must list each of {list(space)} once (at least two)")
        if n_samples < 2:
            raise ConfigError("strategy.n_samples", f"must be >= 2 to estimate a spread, got {n_samples}")
        if not 0 < alpha <= 0.5:  # the criterion's own combination has probability 0.5 and must survive
            raise ConfigError("strategy.alpha", f"must be in (0, 0.5], got {alpha}")
        if scale not in ("standard_error", "predictive"):
            raise ConfigError("strategy.scale", f"must be standard_error or predictive, got {scale!r}")
        if sequential and not 2 <= min_samples <= n_samples:
            raise ConfigError("strategy.min_samples", f"must be in [2, n_samples], got {min_samples}")
        if order_by not in ("config", "sensitivity"):
            raise ConfigError("strategy.order_by", f"must be config or sensitivity, got {order_by!r}")
        if order_by == "sensitivity" and pilot_trials < 2:
            raise ConfigError("strategy.pilot_trials", "ordering by sensitivity needs pilot_trials >= 2")
        self.n_samples, self.alpha, self.scale = n_samples, alpha, scale
        self.sequential, self.min_samples = sequential, min_samples
        self.order_by, self.pilot_trials = order_by, pilot_trials if order_by == "sensitivity" else 0

    def max_trials(self) -> int:
        """An upper bound: every combination of every stage survives."""
        sizes = [len(self.space[name].values) for name in self.order]
        return self.pilot_trials + self.n_samples * sum(math.prod(sizes[: j + 1]) for j in range(1, len(sizes)))

    # -- reading the history -------------------------------------------------------------------

    def probability(self, combination: Combination, criterion: float) -> float:
        """P(loss < criterion) under the Student-t model of the combination's samples."""
        n = len(combination.losses)
        if n < 2:
            return 0.0
        spread = combination.sd * (math.sqrt(1 + 1 / n) if self.scale == "predictive" else 1 / math.sqrt(n))
        if spread == 0:
            return 1.0 if combination.mean <= criterion else 0.0
        return float(stats.t.cdf(criterion, df=n - 1, loc=combination.mean, scale=spread))

    def criterion(self, combinations: Sequence[Combination], minimum: int = 2) -> float:
        """The lowest mean loss among combinations with at least ``minimum`` values."""
        return min((c.mean for c in combinations if len(c.losses) >= minimum), default=math.inf)

    def stages(self, history: Sequence[Trial]) -> tuple[list[Stage], tuple[str, ...] | None]:
        """The stages so far (the last may be incomplete) and the order used (None while piloting)."""
        by_stage: dict[int, list[Trial]] = {}
        for trial in history:
            if "stage" in trial.tags:
                by_stage.setdefault(int(trial.tags["stage"]), []).append(trial)
        order = self._order(by_stage.get(PILOT, []))
        if order is None:
            return [], None
        stages: list[Stage] = []
        candidates = [dict(zip(order[:2], values)) for values in
                      itertools.product(*(self.space[name].values for name in order[:2]))]
        for number in range(1, len(order)):
            stage = self._tally(number, order[: number + 1], candidates, by_stage.get(number, []))
            stages.append(stage)
            survivors = [c.fixed for c in self.survivors(stage)]
            if not self.complete(stage) or number == len(order) - 1 or not survivors:
                break
            candidates = [{**fixed, order[number + 1]: value}
                          for fixed in survivors for value in self.space[order[number + 1]].values]
        return stages, order

    def _order(self, pilot: list[Trial]) -> tuple[str, ...] | None:
        if self.order_by == "config":
            return self.order
        if len(pilot) < self.pilot_trials or any(t.state is TrialState.RUNNING for t in pilot):
            return None
        done = [t for t in pilot if t.state is TrialState.COMPLETE and t.value is not None]
        sensitivity = {name: self._spread(done, name) for name in self.order}
        return tuple(sorted(self.order, key=lambda name: (-sensitivity[name], self.order.index(name))))

    def _spread(self, trials: list[Trial], name: str) -> float:
        means = [np.mean([self.direction.loss(t.value) for t in trials if t.params[name] == value])
                 for value in self.space[name].values if any(t.params[name] == value for t in trials)]
        return float(max(means) - min(means)) if len(means) > 1 else 0.0

    def _tally(self, number: int, names: tuple[str, ...], candidates: list[Params], trials: list[Trial]) -> Stage:
        groups: dict[str, list[Trial]] = {}
        for trial in trials:
            groups.setdefault(trial.tags.get("combination", ""), []).append(trial)
        combinations = []
        for fixed in candidates:
            mine = groups.get(Combination(fixed).key, [])
            losses = tuple(self.direction.loss(t.value) for t in mine
                           if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value))
            running = sum(t.state is TrialState.RUNNING for t in mine)
            combinations.append(Combination(fixed, losses, len(mine), running))
        return Stage(number, names, tuple(combinations))

    def wants_more(self, combination: Combination, stage: Stage) -> bool:
        """Whether a combination still needs samples (all of them, unless sequentially stopped)."""
        if combination.scheduled >= self.n_samples:
            return False
        if self.sequential and len(combination.losses) >= self.min_samples:
            criterion = self.criterion(stage.combinations, self.min_samples)
            return self.probability(combination, criterion) >= self.alpha
        return True

    def complete(self, stage: Stage) -> bool:
        return all(c.running == 0 and not self.wants_more(c, stage) for c in stage.combinations)

    def survivors(self, stage: Stage) -> list[Combination]:
        criterion = self.criterion(stage.combinations)
        return [c for c in stage.combinations if self.probability(c, criterion) >= self.alpha]

    def winner(self, history: Sequence[Trial]) -> Combination | None:
        """The best combination of the last stage, once the study is done."""
        stages, order = self.stages(history)
        if order is None or len(stages) < len(order) - 1 or not self.complete(stages[-1]):
            return None
        return min(stages[-1].combinations, key=lambda c: c.mean, default=None)

    # -- proposing -----------------------------------------------------------------------------

    def propose(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        stages, order = self.stages(history)
        if order is None:
            return self._pilot(history, numbers)
        stage = stages[-1]
        if self.complete(stage) and (stage.number == len(order) - 1 or not self.survivors(stage)):
            return Decision(finished=True)
        pending = {c.key: 0 for c in stage.combinations}
        proposals = []
        for number in numbers:
            waiting = [c for c in stage.combinations
                       if self.wants_more(_with_pending(c, pending[c.key]), stage)]
            if not waiting:
                break
            chosen = min(waiting, key=lambda c: c.scheduled + pending[c.key])
            pending[chosen.key] += 1
            drawn = self.space.sample(self.rng(number))
            params = {name: chosen.fixed.get(name, drawn[name]) for name in self.space}
            proposals.append(Proposal(params, {"stage": str(stage.number), "combination": chosen.key}))
        return Decision(proposals)

    def _pilot(self, history: Sequence[Trial], numbers: Sequence[int]) -> Decision:
        started = sum(t.tags.get("stage") == str(PILOT) for t in history)
        count = max(0, min(len(numbers), self.pilot_trials - started))
        return Decision([Proposal(self.space.sample(self.rng(number)), {"stage": str(PILOT)})
                         for number in numbers[:count]])

    # -- explaining ----------------------------------------------------------------------------

    def artifacts(self, history: Sequence[Trial]) -> dict[str, str | bytes]:
        """Per stage: the table of Tables 2-3 (mean, sd, n, probability, kept) and a heatmap."""
        stages, order = self.stages(history)
        files: dict[str, str | bytes] = {}
        for stage in stages:
            if not self.complete(stage):
                continue
            table = self.stage_table(stage)
            files[f"t_sampling/stage{stage.number}.csv"] = table.to_csv(index=False)
            files[f"t_sampling/stage{stage.number}.png"] = self._heatmap(stage, table)
        best = self.winner(history)
        if best is not None and order is not None:
            files["t_sampling/summary.md"] = self._summary(stages, order, best, len(history))
        return files

    def stage_table(self, stage: Stage) -> pd.DataFrame:
        criterion = self.criterion(stage.combinations)
        last = stage.number == len(self.order) - 1
        chosen = {c.key for c in ([min(stage.combinations, key=lambda c: c.mean)] if last else self.survivors(stage))}
        sign = 1.0 if self.direction is Direction.MINIMIZE else -1.0
        return pd.DataFrame([{**c.fixed, "n": len(c.losses), "mean": sign * c.mean, "sd": c.sd,
                              "probability": self.probability(c, criterion),
                              "decision": ("winner" if last else "kept") if c.key in chosen else
                              ("-" if last else "dropped")} for c in stage.combinations])

    def _heatmap(self, stage: Stage, table: pd.DataFrame) -> bytes:
        plt = pyplot()
        column = stage.names[-1]
        rows = [name for name in stage.names if name != column]
        table = table.assign(row=table[rows].astype(str).agg(", ".join, axis=1))
        means = table.pivot(index="row", columns=column, values="mean")
        probs = table.pivot(index="row", columns=column, values="probability")
        fig, ax = plt.subplots(figsize=(1.6 + 1.4 * means.shape[1], 1.2 + 0.5 * means.shape[0]))
        image = ax.imshow(means.to_numpy(dtype=float), cmap="viridis_r" if self.direction is Direction.MINIMIZE
                          else "viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(means.to_numpy(dtype=float)):
            ax.text(j, i, f"{value:.4g}\np={probs.iat[i, j]:.3f}", ha="center", va="center", fontsize=7,
                    color="white" if probs.iat[i, j] < self.alpha else "black")
        ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns])
        ax.set_yticks(range(means.shape[0]), list(means.index))
        ax.set_xlabel(column)
        ax.set_ylabel(", ".join(rows))
        ax.set_title(f"stage {stage.number}: mean objective, P(< criterion); white = dropped", fontsize=8)
        fig.colorbar(image, ax=ax)
        return png(fig, dpi=110)

    def _summary(self, stages: list[Stage], order: tuple[str, ...], best: Combination, trainings: int) -> str:
        sign = 1.0 if self.direction is Direction.MINIMIZE else -1.0
        lines = [f"# t_sampling: order {', '.join(order)}", "",
                 "| stage | combinations | kept | trainings |", "| --- | --- | --- | --- |"]
        for stage in stages:
            kept = len(self.survivors(stage)) if stage.number < len(order) - 1 else "-"
            lines.append(f"| {stage.number} | {len(stage.combinations)} | {kept} | "
                         f"{sum(c.scheduled for c in stage.combinations)} |")
        lines += ["", f"Winner: {best.key} (mean objective {sign * best.mean:.6g} over {len(best.losses)} samples); "
                  f"{trainings} trainings in all."]
        return "\n".join(lines) + "\n"


def _with_pending(combination: Combination, pending: int) -> Combination:
    return Combination(combination.fixed, combination.losses, combination.scheduled + pending, combination.running)

