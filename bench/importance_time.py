"""Parameter importance time against history size: what a study's end pays for ``importance.csv`` and its plot.

``hpo_tune.importance.importances`` is timed whole (the trials converted for Optuna, the in-memory study, the
evaluator) on N completed trials of a four-dimensional space (float, log float, stepped int, choice) whose values
come from a toy function that only two of them move, then the bar plot once. fANOVA fits a random forest, so it is
timed only up to ``FANOVA_MAX`` trials.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from hpo_tune.importance import EVALUATORS, importances
from hpo_tune.plots import importance_bars
from hpo_tune.space import SearchSpace
from hpo_tune.trial import Direction, Trial, TrialState

SPACE = SearchSpace.from_config({
    "x": {"type": "float", "low": -5.0, "high": 5.0}, "lr": {"type": "log_float", "low": 1e-4, "high": 1.0},
    "units": {"type": "int", "low": 8, "high": 256, "step": 8}, "act": {"type": "choice", "values": ["relu", "tanh"]},
})
FANOVA_MAX = 1_000  # about 8 s there on 2 cores, growing faster than N


def history(size: int, seed: int = 0) -> list[Trial]:
    """``size`` completed trials at random points; the value depends on x and lr only, plus noise."""
    rng = np.random.default_rng(seed)
    trials = []
    for number in range(size):
        params = SPACE.sample(rng)
        value = params["x"] ** 2 + 3 * np.log10(params["lr"] / 1e-2) ** 2 + rng.normal(0, 0.1)
        trials.append(Trial(number, params, TrialState.COMPLETE, float(value)))
    return trials


def seconds(call: Callable[..., object], *args: object, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``call(*args)``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(sizes: Sequence[int], repeats: int = 3) -> None:
    print(f"\n## Parameter importance time (median of {repeats}; importances() whole, then the plot)")
    for size in sizes:
        trials = history(size)
        for evaluator in EVALUATORS:
            if evaluator == "fanova" and size > FANOVA_MAX:
                continue
            taken = seconds(importances, trials, SPACE, Direction.MINIMIZE, evaluator, repeats=repeats)
            print(f"{evaluator:>9} N={size:>6,}: {taken * 1000:8.1f} ms")
    table = importances(history(sizes[0]), SPACE, Direction.MINIMIZE)
    print(f"{'plot':>9}          : {seconds(importance_bars, table, 'PED-ANOVA', repeats=repeats) * 1000:8.1f} ms")
