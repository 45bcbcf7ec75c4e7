"""Trials per minute with 1 and 2 process workers (and inline) on a CPU-bound toy objective.

The pools are warmed first (``ProcessExecutor.warm``): the figures compare running trials, not
starting Python processes, which a study pays once.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from src import optimize
from src.execution import InlineExecutor, ProcessExecutor

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def burn(params):
    """About 1.5 s of pure-Python arithmetic: one core, the GIL held throughout."""
    total = 0.0
    for i in range(7_500_000):
        total += (i % 7) * params["x"]
    return total


def trials_per_minute(executor, n_trials: int, store: str, study: str) -> float:
    start = time.perf_counter()
    optimize(burn, SPACE, "random", n_trials=n_trials, study=study, tracking_uri=store, progress=False,
             executor=executor)
    return 60 * n_trials / (time.perf_counter() - start)


def run(n_trials: int) -> None:
    print(f"\nTrials per minute on a CPU-bound toy objective ({n_trials} trials; warm pools: worker start-up "
          "excluded)")
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        runners = {"inline": InlineExecutor(), "process, 1 worker": ProcessExecutor(n_workers=1),
                   "process, 2 workers": ProcessExecutor(n_workers=2)}
        rates = {}
        for k, (label, executor) in enumerate(runners.items()):
            if isinstance(executor, ProcessExecutor):
                executor.warm()
            rates[label] = trials_per_minute(executor, n_trials, store, f"parallel-{k}")
            print(f"  {label:<20}: {rates[label]:6.1f} trials/min", flush=True)
        print(f"  2 workers / inline = {rates['process, 2 workers'] / rates['inline']:.2f}x (goal >= 1.8)")
