"""Fitting the staged procedure to a budget of ``n_trials`` trainings.

A plan's unit is ``n``, the samples per combination, the same in every stage as in the paper; a
stage costs ``n`` x its combinations. Stage 1's combinations are known in advance (the C1 pairs of
the first two hyperparameters' conditions); a later stage has its predecessor's survivors x the next
hyperparameter's v conditions, known only when its predecessor ends. Hence three rules:

- **Minimum.** Two samples (fewer give no spread, so the combination would be dropped) for each
  stage-1 combination and for each condition of one survivor in every later stage, plus the pilot
  trials: ``P + 2 (C1 + v3 + ... + vK)``. A smaller budget could not reach a final decision and is
  refused with ``ConfigError("n_trials")``.
- **Samples.** ``n`` is as many as fit if every later stage is as wide as stage 1 (or as its own
  conditions, when more): ``floor((n_trials - P) / (C1 + sum of max(C1, vj)))``, at least 2.
  ``n_samples: auto`` takes that; an explicit ``n_samples`` is an upper bound, reduced to it with a
  note (never refused: the study still runs the same procedure, on fewer samples). ``min_samples``
  (sequential sampling) is capped at ``n``.
- **Survivors.** When a stage ends, the next takes its survivors (P >= alpha) only as far as the
  trainings left pay for them (``n`` x v each) after reserving ``n`` x v for one survivor in every
  stage after it; the most probable survivors are kept. So no stage can outspend the budget, the last
  stage always has room, and when the worst case (every combination survives) fits, nothing changes.

With ``order_by: sensitivity`` the order is unknown until the pilot has run, so the plan assumes the
widest one (conditions in decreasing number), which bounds every order. The plan depends only on the
space, the options and ``n_trials``, so a resumed study with the same budget makes the same decisions.

Where this pays (``python -m bench t-sampling-domain``, issue 26, on sub-spaces of real tables at the least budget and
twice it): level with or slightly ahead of random search and TPE up to 3 hyperparameters of 3 conditions, behind TPE
from 4 hyperparameters or 4 conditions on, and ahead of random there only on unordered categorical spaces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hpo_tune.errors import ConfigError

LEAST_SAMPLES = 2  # a combination needs two values for a spread


@dataclass(frozen=True)
class Plan:
    """Samples per combination, when sequential sampling may stop, and the budget (None: unlimited)."""

    n_samples: int
    min_samples: int
    n_trials: int | None = None

    def keep(self, used: int, sizes: Sequence[int]) -> int | None:
        """How many survivors the next stage can take after ``used`` trainings (None: all of them).

        ``sizes`` are the condition counts of the hyperparameters not fixed yet, the next one first.
        """
        if self.n_trials is None:
            return None
        left = self.n_trials - used - self.n_samples * sum(sizes[1:])
        return max(0, left // (self.n_samples * sizes[0]))


def worst_case(sizes: Sequence[int]) -> int:
    """The combinations over all stages when every one survives."""
    return sum(math.prod(sizes[: j + 1]) for j in range(1, len(sizes)))


def least_trials(sizes: Sequence[int], pilot: int = 0) -> int:
    """The smallest budget that reaches a final decision (the **Minimum** rule); ``fit`` refuses any below it."""
    return pilot + LEAST_SAMPLES * (sizes[0] * sizes[1] + sum(sizes[2:]))


def fit(requested: int | None, min_samples: int | None, sizes: Sequence[int], pilot: int, n_trials: int,
        widest: bool = False) -> tuple[Plan, str | None]:
    """The plan for ``n_trials`` and a one-line note on what it chose (None when it changed nothing).

    ``requested`` is the explicit ``n_samples`` (None: auto); ``min_samples`` is given only with
    sequential sampling; ``sizes`` are the condition counts in the planning order, ``widest`` when that
    is the widest order rather than the one that will run.
    """
    first, later = sizes[0] * sizes[1], sizes[2:]
    least = least_trials(sizes, pilot)
    if n_trials < least:
        parts = f"{LEAST_SAMPLES} samples for each of the {first} stage-1 combinations"
        if later:
            parts += f" and for each of the {sum(later)} conditions one survivor meets in {len(later)} later stages"
        if pilot:
            parts += f", plus {pilot} pilot trials"
        raise ConfigError("n_trials", f"{n_trials} trainings cannot take t_sampling to a final decision: it needs "
                                      f"at least {least} ({parts}); raise n_trials or use fewer conditions")
    fitting = max(LEAST_SAMPLES, (n_trials - pilot) // (first + sum(max(first, v) for v in later)))
    n = fitting if requested is None else min(requested, fitting)
    plan = Plan(n, min(min_samples or n, n), n_trials)
    worst = pilot + n * worst_case(sizes)
    if requested == n and worst <= n_trials:
        return plan, None
    if requested is None:
        chose = f"n_samples=auto: {n} samples per combination"
    elif requested > n:
        chose = f"n_samples={requested} reduced to {n} samples per combination to fit n_trials={n_trials}"
    else:
        chose = f"n_samples={requested} kept"
    at_most = "at most " if widest else ""
    note = f"{chose} (stage 1: {at_most}{first} combinations, {at_most}{n * first} trainings)"
    if worst > n_trials:
        note += (f"; a later stage keeps only the most probable survivors that the rest of the {n_trials:,} "
                 f"trainings pays for (every combination surviving would need {worst:,})")
    if min_samples is not None and plan.min_samples < min_samples:
        note += f"; min_samples {min_samples} -> {plan.min_samples}"
    return plan, note
