"""Trials per minute with 1 and 2 process workers (and inline) on a CPU-bound toy objective.

The pools are warmed first (``ProcessExecutor.warm``): the figures compare running trials, not
starting Python processes, which a study pays once.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from hpo_tune import optimize
from hpo_tune.execution import InlineExecutor, ProcessExecutor

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


TRIAL_S = 1.5  # how long each toy trial computes
ROUNDS = "HPO_BENCH_BURN_ROUNDS"  # the loop length that takes TRIAL_S here (workers inherit it)


def burn(params):
    """About ``TRIAL_S`` of pure-Python arithmetic: one core, the GIL held throughout."""
    total = 0.0
    for i in range(int(os.environ.get(ROUNDS, 7_500_000))):
        total += (i % 7) * params["x"]
    return total


def calibrate() -> None:
    """Set the loop length that takes ``TRIAL_S`` on this machine, before any worker starts."""
    os.environ[ROUNDS] = "1000000"
    start = time.perf_counter()
    burn({"x": 0.5})
    os.environ[ROUNDS] = str(int(1_000_000 * TRIAL_S / (time.perf_counter() - start)))


def trials_per_minute(executor, n_trials: int, store: str, study: str) -> tuple[float, float, float]:
    """Trials per minute; the mean seconds a trial computed (its ``duration_s``); and the trials per minute
    the workers' computing alone allows (each worker's trials over the seconds they computed, summed over
    the workers, whose cores need not be equally fast): what the rate falls short of it is the gaps between
    trials, the pool's close and the last trial's tail, while one worker waits for the other."""
    from collections import defaultdict

    from mlflow.tracking import MlflowClient

    start = time.perf_counter()
    result = optimize(burn, SPACE, "random", n_trials=n_trials, study=study, tracking_uri=store, progress=False,
                      executor=executor, importance="none")
    rate = 60 * n_trials / (time.perf_counter() - start)
    client = MlflowClient(store)
    by_worker = defaultdict(list)
    for trial in result.trials:
        run = client.get_run(trial.run_id)
        by_worker[run.data.tags["worker"]].append(run.data.metrics["duration_s"])
    durations = [d for worker in by_worker.values() for d in worker]
    return rate, sum(durations) / len(durations), sum(60 * len(d) / sum(d) for d in by_worker.values())


def run(n_trials: int) -> None:
    print(f"\nTrials per minute on a CPU-bound toy objective ({n_trials} trials of {TRIAL_S} s; warm pools: "
          "worker start-up excluded)")
    calibrate()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        runners = {"inline": InlineExecutor(), "process, 1 worker": ProcessExecutor(n_workers=1),
                   "process, 2 workers": ProcessExecutor(n_workers=2)}
        rates, computing, bound = {}, {}, {}
        for k, (label, executor) in enumerate(runners.items()):
            if isinstance(executor, ProcessExecutor):
                executor.warm()
            rates[label], computing[label], bound[label] = trials_per_minute(executor, n_trials, store,
                                                                             f"parallel-{k}")
            print(f"  {label:<20}: {rates[label]:6.1f} trials/min (each computed {computing[label]:.2f} s; computing "
                  f"alone allows {bound[label]:.1f})", flush=True)
        pool, inline = "process, 2 workers", "inline"
        print(f"  2 workers / inline = {rates[pool] / rates[inline]:.2f}x (goal >= 1.8); what this machine's cores "
              f"allow, their computing rates alone: {bound[pool] / bound[inline]:.2f}x; the pool reached "
              f"{100 * rates[pool] / bound[pool]:.0f}% of its workers' rate, inline "
              f"{100 * rates[inline] / bound[inline]:.0f}%")
