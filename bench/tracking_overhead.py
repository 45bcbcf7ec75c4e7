"""Per-trial tracking overhead: a study whose objective does no work, tracked locally and on a server.

Each trial opens its child run, reports three epochs of three metrics, logs its parameters and
objective and ends; the driver re-reads the history and proposes. The server runs as ``python -m
src.server`` runs it (MLflow's server with the project's one-request trial routes), and as plain
``mlflow server`` for comparison (a request per write). The wall time per trial is
what tracking costs a real trial on top of its training. The history read-back is also timed for
larger studies (full read on resume, incremental refresh per proposal).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from src import optimize
from src.server import local_postgres, local_server
from src.space import SearchSpace
from src.tracking import Tracker
from src.trial import Direction

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def idle(params, trial):
    for epoch in (1, 2, 3):
        trial.report(epoch, {"train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch, "val_accuracy": 0.5})
    return params["x"] ** 2


def per_trial_ms(uri: str, n_trials: int, study: str) -> float:
    optimize(idle, SPACE, "random", n_trials=1, study=f"{study}-warm-up", tracking_uri=uri, progress=False)
    start = time.perf_counter()
    optimize(idle, SPACE, "random", n_trials=n_trials, study=study, tracking_uri=uri, progress=False)
    return 1000 * (time.perf_counter() - start) / n_trials


def read_back(uri: str, study: str) -> tuple[float, float]:
    """(seconds for the first full read, median seconds of an incremental refresh)."""
    record = Tracker(uri).load_study("hpo", study, SearchSpace.from_config(SPACE), Direction.MINIMIZE)
    start = time.perf_counter()
    record.history()
    full = time.perf_counter() - start
    refreshes = []
    for _ in range(5):
        start = time.perf_counter()
        record.history()
        refreshes.append(time.perf_counter() - start)
    return full, statistics.median(refreshes)


def run(n_trials: int, read_sizes: list[int]) -> None:
    print(f"\nTracking overhead per trial ({n_trials} trials of a no-op objective, 3 epochs of metrics)")
    with tempfile.TemporaryDirectory() as tmp:
        local = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        base = per_trial_ms(local, n_trials, "overhead")
        print(f"  local SQLite store             : {base:7.1f} ms/trial", flush=True)
        for plain, what in ((False, "project's server, SQLite"), (True, "mlflow server, SQLite")):
            (folder := Path(tmp) / ("plain" if plain else "project")).mkdir()
            with local_server(folder, plain=plain) as server:
                served = per_trial_ms(server, n_trials, "overhead")
                print(f"  {what:<31}: {served:7.1f} ms/trial ({served / base:.1f}x local; goal <= 2)", flush=True)
        with ExitStack() as stack:
            try:
                (Path(tmp) / "postgres").mkdir()
                backend = stack.enter_context(local_postgres(Path(tmp) / "postgres"))
            except RuntimeError as reason:
                print(f"  project's server, PostgreSQL   : not measured ({reason})")
            else:
                server = stack.enter_context(local_server(Path(tmp) / "postgres", backend=backend))
                served = per_trial_ms(server, n_trials, "overhead")
                print(f"  project's server, PostgreSQL   : {served:7.1f} ms/trial ({served / base:.1f}x local SQLite)",
                      flush=True)
        print("History read-back from the local store (trials: full read s, incremental refresh ms)")
        done = 0
        for size in sorted(read_sizes):
            optimize(idle, SPACE, "random", n_trials=size, study="read-back", tracking_uri=local, progress=False)
            done = size
            full, refresh = read_back(local, "read-back")
            print(f"  {done:>6,} trials: {full:6.2f} s full, {1000 * refresh:6.1f} ms refresh", flush=True)
