"""Refinement rounds: a compass (pattern) search around the best trial, for the budget the grid leaves.

The grid stays near the better corner of phase 1; the trials ``n_trials`` leaves after it go to rounds
that move towards the optimum instead. Round r is a star around the centre (the best measured trial so
far, the earliest on a tie): for each factor the centre one step down and one step up, the other
factors kept; a choice steps to its other values. Steps are in each dimension's own scale: floats in
their units, log_floats in decades, ints on their step grid (log ints in decades), and an int always
moves by at least one step. A move past a limit stops at the limit (the space's bounds, or
``narrowing.limits`` where the config opened them). When a round finds a better trial the next round
is centred there with the same steps (a move); when it does not, the steps halve (a contraction).

A star has 2k points, a 3^k grid many more: the star is what a round can afford for many factors.
Points already run (the same configuration in any earlier trial) are left out, and a round that
keeps none contracts at once without taking trials; the last round is cut to the trials left, the
most significant factors of phase 1 (smallest p, then largest |effect|) first. Once every step is
below ``TOL`` of its dimension's span and a round is empty, the search has converged: the study
ends early and says so. Everything follows from the trials before each round, so the same history
gives the same rounds and a resumed study continues them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpo_tune.space import Choice, Int, LogFloat, Params
from hpo_tune.strategies.factorial.analysis import measured
from hpo_tune.strategies.factorial.design import Factor, clean
from hpo_tune.strategies.factorial.narrowing import Narrowing
from hpo_tune.trial import Direction, Trial

TOL = 1e-6  # a step below this fraction of its dimension's span no longer moves anything that matters


@dataclass(frozen=True)
class Round:
    """One round: its first trial number, centre (and its value), steps per factor and new points."""

    index: int
    start: int
    centre: Params
    value: float
    steps: tuple[float, ...]  # per factor, in its own scale; 0 for choices
    points: tuple[Params, ...]


@dataclass(frozen=True)
class Search:
    """The rounds so far; ``stopped`` says why no round follows the last (empty while one can)."""

    rounds: tuple[Round, ...]
    stopped: str


def span(factor: Factor) -> float:
    """The dimension's declared range in its own scale (decades for logs)."""
    low, high = factor.dim.low, factor.dim.high
    return math.log10(high / low) if factor.logarithmic else float(high - low)


def initial_steps(factors: Sequence[Factor], narrowing: Narrowing) -> tuple[float, ...]:
    """The grid's own spacing (the narrowing rule's step), so round 0 continues where the grid stopped."""
    steps = []
    for factor in factors:
        dim = factor.dim
        if isinstance(dim, Choice):
            steps.append(0.0)
        elif isinstance(dim, LogFloat):
            steps.append(narrowing.rules["log_float"].step)
        elif isinstance(dim, Int):
            move = narrowing.rules["int"].step * dim.step
            steps.append(math.log10(1 + move / dim.low) if dim.log else float(move))
        else:
            steps.append(narrowing.rules["float"].step * (dim.high - dim.low))
    return tuple(steps)


def move(factor: Factor, centre: Any, step: float, sign: int, narrowing: Narrowing) -> Any:
    """``centre`` moved ``sign`` x ``step`` in the factor's scale, stopped at its limits; None if it cannot move."""
    dim = factor.dim
    low, high = narrowing.limits.get(factor.name, (dim.low, dim.high))
    raw = centre * 10 ** (sign * step) if factor.logarithmic else centre + sign * step
    if low is not None:
        raw = max(raw, low)
    if high is not None:
        raw = min(raw, high)
    if isinstance(dim, Int):
        value = dim.low + math.floor((raw - dim.low) / dim.step + 0.5) * dim.step
        if value == centre:  # an int moves by at least one step
            value = centre + sign * dim.step
        if (low is not None and value < low) or (high is not None and value > high):
            return None
        return int(value)
    value = clean(raw)
    return None if value == centre else value


def star(factors: Sequence[Factor], order: Sequence[int], centre: Params, steps: Sequence[float],
         narrowing: Narrowing) -> list[Params]:
    """The centre's neighbours, factor by factor in ``order`` (most significant first)."""
    points = []
    for i in order:
        factor = factors[i]
        if isinstance(factor.dim, Choice):
            values = [v for v in factor.dim.values if v != centre[factor.name]]
        else:
            values = [move(factor, centre[factor.name], steps[i], sign, narrowing) for sign in (-1, 1)]
        points += [{**centre, factor.name: v} for v in values if v is not None]
    return points


def search(factors: Sequence[Factor], order: Sequence[int], narrowing: Narrowing, by_number: Mapping[int, Trial],
           start: int, end: int, direction: Direction) -> Search:
    """The rounds for trials ``start .. end-1``, replayed from the history (every trial below ``start`` finished).

    Each round follows from the trials before it alone, so the same history gives the same rounds.
    """
    names = [f.name for f in factors]

    def key(params: Params) -> tuple:
        return tuple(params[name] for name in names)

    seen: set[tuple] = set()  # configurations of the trials before ``number``, and the best of them
    best: Trial | None = None

    def take(numbers: range) -> None:
        nonlocal best
        for n in numbers:
            trial = by_number[n]
            seen.add(key(trial.params))
            if measured(trial) and (best is None or direction.loss(float(trial.value)) < direction.loss(best.value)):
                best = trial  # strictly better: the earliest wins a tie

    take(range(start))
    assert best is not None  # phase 1 has measured runs, or the analysis would have failed
    steps = initial_steps(factors, narrowing)
    rounds: list[Round] = []
    number = start
    while number < end:
        centre = best
        points = [p for p in star(factors, order, centre.params, steps, narrowing) if key(p) not in seen]
        points = list({key(p): p for p in points}.values())[: end - number]
        if not points:
            if all(isinstance(f.dim, Choice) or s < TOL * span(f) for f, s in zip(factors, steps)):
                return Search(tuple(rounds), f"converged: no new point around trial {centre.number} once every step "
                                             f"is below {TOL:g} of its range")
            steps = tuple(s / 2 for s in steps)
            continue
        rounds.append(Round(len(rounds), number, dict(centre.params), float(centre.value), steps, tuple(points)))
        if any(n not in by_number or not by_number[n].finished for n in range(number, number + len(points))):
            return Search(tuple(rounds), "")
        take(range(number, number + len(points)))
        number += len(points)
        if best is centre:  # no better point at the edge: contract
            steps = tuple(s / 2 for s in steps)
    return Search(tuple(rounds), "budget spent")
