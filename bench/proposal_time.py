"""Strategy proposal time against history size, for every strategy.

Strategies are pure functions of the history, so each is timed on an in-memory history of N
finished trials with values from a noisy toy function: random points of the space for the
strategies that read only parameters and values, and trials the strategy itself proposed (filled in
batches) for those whose state lives in trial tags (t_sampling's stages, factorial_grid's phases,
per_epoch's lineages); the history read-back from MLflow, which every proposal also pays, is timed separately
(``python -m bench tracking``). A strategy that finishes by design before N trials (factorial_grid)
is timed at the largest history it reaches. ``t_sampling:wide`` is t_sampling on a space whose stage 1
has 5,000 combinations, so a proposal at N = 5,000 is made in the middle of that stage. ``gp_bo:table`` and
``gp_bo:cell`` (and ``gamma_bo``'s) time the BOs on the real tables' shapes, where they score every configuration.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Trial, TrialState

CONTINUOUS = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "log_float", "low": 1e-3, "high": 1.0},
              "z": {"type": "float", "low": 0.0, "high": 1.0}}
CONDITIONS = {f"h{k}": {"type": "choice", "values": [1, 2, 3]} for k in range(5)}  # seed 000's 3^5 combinations
# 100 x 50 = 5,000 stage-1 combinations, so a 5,000-trial history is the middle of stage 1
WIDE_CONDITIONS = {"h0": {"type": "choice", "values": list(range(100))},
                   "h1": {"type": "choice", "values": list(range(50))},
                   "h2": {"type": "choice", "values": [1, 2, 3]}}
FACTORS = {"conv": {"type": "int", "low": 3, "high": 6}, "dense": {"type": "int", "low": 1, "high": 3},
           "trainer.lr": {"type": "log_float", "low": 1e-3, "high": 0.1}}
LEARNING_RATE = {"trainer.lr": {"type": "log_float", "low": 1e-4, "high": 0.5}}
# the real tables' shapes (bench.tables), where the BOs score every configuration: HPOBench's MLP (five choices of
# numbers, 30,000 configurations) and NAS-Bench-201's cell (six choices of five operations, 15,625)
TABLE = {name: {"type": "choice", "values": [kind(round(float(v), 8)) for v in np.geomspace(low, high, levels)]}
         for name, low, high, levels, kind in (("alpha", 1e-8, 1.0, 10, float), ("batch_size", 4, 256, 10, round),
                                               ("depth", 1, 3, 3, round), ("learning_rate_init", 1e-5, 1.0, 10, float),
                                               ("width", 16, 1024, 10, round))}
CELL = {f"Op{k}": {"type": "choice", "values": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                "avg_pool_3x3"]} for k in range(6)}


def cases(size: int) -> dict[str, tuple[Mapping[str, Any], dict[str, Any]]]:
    """Each case's space and options, sized so that it can run ``size`` trials where it allows that.

    A case is named after its strategy, or ``strategy:variant`` for a further case of the same strategy.
    """
    return {
        "random": (CONTINUOUS, {}),
        "grid": (CONTINUOUS, {"points": 18}),  # 5,832 points
        "optuna_tpe": (CONTINUOUS, {}),
        "gp_bo": (CONTINUOUS, {"n_iterations": size}),
        "gamma_bo": (CONTINUOUS, {"n_iterations": size}),
        "gp_bo:table": (TABLE, {"n_iterations": size}),
        "gamma_bo:table": (TABLE, {"n_iterations": size}),
        "gp_bo:cell": (CELL, {"n_iterations": size}),
        "gamma_bo:cell": (CELL, {"n_iterations": size}),
        "t_sampling": (CONDITIONS, {"n_samples": 20}),
        "t_sampling:wide": (WIDE_CONDITIONS, {"n_samples": 2}),
        "factorial_grid": (FACTORS, {}),
        "per_epoch": (LEARNING_RATE, {"inner": "grid", "epochs": math.ceil(size / 12),
                                      "inner_options": {"points": 12}}),
    }


def toy_value(params: Mapping[str, Any], number: int) -> float:
    numeric = sum(float(v) for v in params.values() if isinstance(v, int | float))
    return numeric + float(np.random.default_rng(number).normal())


SELF_FILLED = ("t_sampling", "factorial_grid", "per_epoch")


def random_fill(space: SearchSpace, size: int) -> list[Trial]:
    rng = np.random.default_rng(0)
    return [Trial(n, params, TrialState.COMPLETE, toy_value(params, n), f"run-{n}")
            for n, params in ((n, space.sample(rng)) for n in range(size))]


def fill(strategy: Any, size: int, batch: int = 250) -> tuple[list[Trial], bool]:
    """A history of up to ``size`` finished trials proposed by ``strategy`` itself; and whether it finished."""
    history: list[Trial] = []
    while len(history) < size:
        numbers = list(range(len(history), min(size, len(history) + batch)))
        decision = strategy.propose(history, numbers)
        history += [Trial(n, p.params, TrialState.COMPLETE, toy_value(p.params, n), f"run-{n}", p.tags)
                    for n, p in zip(numbers, decision.proposals)]
        if decision.finished or not decision.proposals:
            return history, True
    return history, False


def measure(case: str, size: int, repeats: int = 3) -> tuple[int, float]:
    """(history size reached, median seconds of one proposal at about that size).

    Each timed proposal follows one on the history less its last trial, so a strategy that keeps what it
    read between calls (t_sampling) pays for taking in one finished trial, as it does in a running study.
    """
    config, options = cases(size)[case]
    name = case.split(":")[0]
    space = SearchSpace.from_config(config)
    strategy = make_strategy(name, space, 0, Direction.MINIMIZE, options)
    history, finished = fill(strategy, size) if name in SELF_FILLED else (random_fill(space, size), False)
    if finished:  # time its last real proposal, not the "nothing left" answer
        history, numbers = history[:-1], [history[-1].number]
    else:
        numbers = [len(history)]
    times = []
    for _ in range(repeats):
        strategy.propose(history[:-1], numbers)
        start = time.perf_counter()
        strategy.propose(history, numbers)
        times.append(time.perf_counter() - start)
    return len(history), statistics.median(times)


DRAWS = {"choice (5,000 values)": {"type": "choice", "values": list(range(5_000))},
         "int": {"type": "int", "low": 0, "high": 100},
         "log int": {"type": "int", "low": 1, "high": 1_000, "log": True},
         "float": {"type": "float", "low": -5.0, "high": 5.0},
         "log_float": {"type": "log_float", "low": 1e-5, "high": 1.0}}


def draw_times(n: int = 20_000) -> dict[str, float]:
    """Microseconds per draw of one dimension of each type: every random proposal (and t_sampling's free
    hyperparameters) draws each dimension once."""
    space = SearchSpace.from_config(DRAWS)
    rng = np.random.default_rng(0)
    times = {}
    for name, dim in space.items():
        start = time.perf_counter()
        for _ in range(n):
            dim.sample(rng)
        times[name] = 1e6 * (time.perf_counter() - start) / n
    return times


def run(sizes: list[int], strategies: list[str]) -> None:
    print("\nOne draw (us): " + ", ".join(f"{name} {us:.1f}" for name, us in draw_times().items()))
    print("\nProposal time (ms) against history size; in brackets the history a strategy stops at")
    print(f"{'strategy':<17}" + "".join(f"{n:>16,}" for n in sizes))
    for case in (c for name in strategies for c in cases(max(sizes)) if c.split(":")[0] == name):
        cells = []
        for size in sizes:
            reached, seconds = measure(case, size)
            cells.append(f"{1000 * seconds:.1f}" + ("" if reached == size else f" [{reached}]"))
        print(f"{case:<17}" + "".join(f"{c:>16}" for c in cells), flush=True)
