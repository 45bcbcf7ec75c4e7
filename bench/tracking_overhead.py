"""Per-trial tracking overhead: a study whose objective does no work, tracked locally and on a server.

Each trial opens its child run, reports three epochs of three metrics, logs its parameters and
objective and ends; the driver re-reads the history and proposes. A study's start-up (its experiment,
parent run, claim ledger, first history read) is timed apart from its per-trial cost. The server runs as ``python -m
hpo_tune.server`` runs it (MLflow's server with the project's one-request trial routes), and as plain
``mlflow server`` for comparison (a request per write), each measured in rounds side by side with a local
SQLite store, so the ratio compares runs made under the same load. The time per trial is what tracking
costs a real trial on top of its training. The history read-back is also timed for
larger studies (full read on resume, incremental refresh per proposal).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from hpo_tune import optimize
from hpo_tune.server import local_postgres, local_server
from hpo_tune.space import SearchSpace
from hpo_tune.tracking import Tracker
from hpo_tune.trial import Direction

POSTGRES = "project's server, PostgreSQL"
SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}


def idle(params, trial):
    for epoch in (1, 2, 3):
        trial.report(epoch, {"train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch, "val_accuracy": 0.5})
    return params["x"] ** 2


def costs(uri: str, n_trials: int, study: str) -> tuple[float, float]:
    """(ms to start a study and run its first trial, ms per further trial): a one-trial study and one of
    ``n_trials`` more, so a study's fixed cost does not blur the per-trial one."""
    times = []
    for size in (1, n_trials + 1):
        start = time.perf_counter()
        optimize(idle, SPACE, "random", n_trials=size, study=f"{study}-{size}-{time.monotonic_ns()}", tracking_uri=uri,
                 progress=False, importance="none")
        times.append(1000 * (time.perf_counter() - start))
    return times[0], (times[1] - times[0]) / n_trials


def side_by_side(server: str, local: str, n_trials: int, rounds: int) -> tuple[float, float, float]:
    """(median start-up ms, median per-trial ms, median ratio of per-trial ms to local SQLite's measured in the
    same round) over ``rounds`` rounds of the two, one after the other."""
    costs(server, 1, "warm-up")
    rows = [(*costs(server, n_trials, "served"), costs(local, n_trials, "local")[1]) for _ in range(rounds)]
    return (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
            statistics.median(r[1] / r[2] for r in rows))


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


def run(n_trials: int, read_sizes: list[int], rounds: int = 3) -> None:
    print(f"\nTracking overhead ({n_trials} trials of a no-op objective, 3 epochs of metrics; medians of {rounds} "
          "rounds, each server measured side by side with a local SQLite store)")
    with tempfile.TemporaryDirectory() as tmp:
        local = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        costs(local, 1, "warm-up")
        rows = [costs(local, n_trials, "local") for _ in range(rounds)]
        print(f"  {'local SQLite store':<28}: study start-up {statistics.median(r[0] for r in rows):6.0f} ms, "
              f"{statistics.median(r[1] for r in rows):5.1f} ms/trial", flush=True)

        def report(what: str, server: str) -> None:
            startup, per_trial, ratio = side_by_side(server, local, n_trials, rounds)
            print(f"  {what:<28}: study start-up {startup:6.0f} ms, {per_trial:5.1f} ms/trial = {ratio:.1f}x local "
                  "SQLite's (goal <= 2)", flush=True)

        for plain, what in ((False, "project's server, SQLite"), (True, "mlflow server, SQLite")):
            (folder := Path(tmp) / ("plain" if plain else "project")).mkdir()
            with local_server(folder, plain=plain) as server:
                report(what, server)
        with ExitStack() as stack:
            try:
                (Path(tmp) / "postgres").mkdir()
                backend = stack.enter_context(local_postgres(Path(tmp) / "postgres"))
            except RuntimeError as reason:
                print(f"  {POSTGRES:<28}: not measured ({reason})")
            else:
                report(POSTGRES, stack.enter_context(local_server(Path(tmp) / "postgres", backend=backend)))
        print("History read-back from the local store (trials: full read s, incremental refresh ms)")
        done = 0
        for size in sorted(read_sizes):
            optimize(idle, SPACE, "random", n_trials=size, study="read-back", tracking_uri=local, progress=False,
                     importance="none")
            done = size
            full, refresh = read_back(local, "read-back")
            print(f"  {done:>6,} trials: {full:6.2f} s full, {1000 * refresh:6.1f} ms refresh", flush=True)
