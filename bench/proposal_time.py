"""How long the driver spends per proposal as a study grows: history read-back plus strategy.

Usage: python -m bench.proposal_time [--sizes 100 1000] [--strategy random]

For each size N it fills a fresh study with N finished trials (a trivial objective), then times
(a) the first, full read of the history (what a resumed study pays once), (b) an incremental
refresh after one more trial (what every proposal pays), and (c) the strategy's ``propose``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from src import optimize
from src.space import SearchSpace
from src.strategies import make_strategy
from src.tracking import Tracker
from src.trial import Direction

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "y": {"type": "log_float", "low": 1e-3, "high": 1.0}}


def objective(params):
    return (params["x"] - 1) ** 2 + params["y"]


def measure(size: int, strategy: str, store: str) -> dict[str, float]:
    study = f"bench-{strategy}-{size}"
    start = time.perf_counter()
    optimize(objective, SPACE, strategy, n_trials=size, study=study, tracking_uri=store, progress=False)
    fill = time.perf_counter() - start
    tracker = Tracker(store)
    space = SearchSpace.from_config(SPACE)
    record = tracker.load_study("hpo", study, space, Direction.MINIMIZE)
    start = time.perf_counter()
    history = record.history()
    full = time.perf_counter() - start
    optimize(objective, SPACE, strategy, n_trials=size + 1, study=study, tracking_uri=store, progress=False)
    refreshes = []
    for _ in range(5):
        start = time.perf_counter()
        history = record.history()
        refreshes.append(time.perf_counter() - start)
    chosen = make_strategy(strategy, space, 0, Direction.MINIMIZE)
    start = time.perf_counter()
    chosen.propose(history, [len(history)])
    propose = time.perf_counter() - start
    return {"trials": len(history), "fill_s_per_trial": fill / size, "full_read_s": full,
            "refresh_s": statistics.median(refreshes), "propose_s": propose}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--strategy", default="random")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        print(f"{'trials':>7} {'ms/trial logged':>16} {'full read s':>12} {'refresh ms':>11} {'propose ms':>11}")
        for size in args.sizes:
            row = measure(size, args.strategy, store)
            print(f"{row['trials']:>7} {1000 * row['fill_s_per_trial']:>16.1f} {row['full_read_s']:>12.2f} "
                  f"{1000 * row['refresh_s']:>11.1f} {1000 * row['propose_s']:>11.2f}")


if __name__ == "__main__":
    main()
