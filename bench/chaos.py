"""Kill storms and rival processes on one study: the record must stay exactly-once.

Each scenario runs real processes (``python -m bench.chaos worker ...``, a study of short sleeping
trials through ``optimize``) against one store, kills them with SIGKILL at random moments, then
lets a last process (or the survivor) finish the study, and counts ``kills`` (those that hit a
live process) and, from the store:

- ``trials``: trial numbers that finished; ``lost``: numbers below the budget that never did;
- ``duplicated``: numbers with more than one live (not superseded) run;
- ``running``: runs left RUNNING; ``parents``: parent runs of the study (must be 1);
- ``failed``: numbers that failed for good (worker kills past ``max_retries``).

Scenarios: ``storm`` (20 kills of a single process at random moments, start-up included),
``rivals`` (two processes on one study, one killed mid-study), ``workers`` (process workers killed
under a live driver). Stores: a local SQLite file, the project's server backed by SQLite and by
PostgreSQL (skipped, saying why, when PostgreSQL cannot start), and a plain ``mlflow server`` (no trial
routes: every write is one of MLflow's REST calls) backed by SQLite.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
STORES = ("sqlite", "server-sqlite", "server-postgres", "plain-server")
COLUMNS = ("kills", "trials", "lost", "duplicated", "running", "parents", "failed")


def worker(argv: list[str]) -> None:
    """One process of a study: ``worker URI STUDY N_TRIALS [--sleep S] [--executor process] ...``."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos worker")
    parser.add_argument("uri")
    parser.add_argument("study")
    parser.add_argument("n_trials", type=int)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds each trial sleeps")
    parser.add_argument("--executor", default="inline")
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--stale-after", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=float, default=0.2,
                        help="seconds between looks while other processes run the last trials")
    args = parser.parse_args(argv)
    from hpo_tune import optimize
    from hpo_tune.execution import make_executor

    def objective(params: dict) -> float:
        time.sleep(args.sleep)
        return params["x"]

    executor = make_executor(args.executor, {"n_workers": 2} if args.executor == "process" else {})
    optimize(objective, SPACE, "random", n_trials=args.n_trials, study=args.study, tracking_uri=args.uri,
             progress=False, poll_interval_s=args.poll_interval, executor=executor, max_retries=args.max_retries,
             heartbeat_interval_s=args.stale_after / 6, stale_after_s=args.stale_after, importance="none")


def start(uri: str, study: str, n_trials: int, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.chaos", "worker", uri, study, str(n_trials), *options],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout_s: float = 600) -> None:
    _, err = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"the study process exited {process.returncode}: {err.strip()[-500:]}")


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def census(uri: str, study: str, n_trials: int) -> dict[str, int]:
    """Count what the store holds for ``study`` (see the module docstring)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, f"tags.study = '{study}'", max_results=100)
    runs = [run for parent in parents for run in client.search_runs(
        experiments, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.trial != ''", max_results=50000)]
    live = [r for r in runs if r.data.tags.get("claimed", "true") == "true"
            and "true" not in (r.data.tags.get("interrupted"), r.data.tags.get("retried"))]
    per_number = collections.Counter(int(r.data.tags["trial"]) for r in live)
    finished = {int(r.data.tags["trial"]) for r in live if r.info.status == "FINISHED"}
    failed = {int(r.data.tags["trial"]) for r in live if r.info.status == "FAILED"}
    return {"trials": len(finished), "lost": len(set(range(n_trials)) - finished - failed),
            "duplicated": sum(count > 1 for count in per_number.values()),
            "running": sum(r.info.status == "RUNNING" for r in runs), "parents": len(parents), "failed": len(failed)}


def storm(uri: str, study: str, n_trials: int, kills: int, rng: random.Random) -> int:
    """Kill one process again and again at random moments (from its first instant), then let one finish."""
    landed = 0
    for _ in range(kills):  # trials long enough that the study outlasts the kills: each lands on a live process
        process = start(uri, study, n_trials, "--sleep", "0.5")
        time.sleep(rng.uniform(0.0, 4.5))
        landed += process.poll() is None
        kill(process)
    finish(start(uri, study, n_trials, "--sleep", "0.5"))
    return landed


def rivals(uri: str, study: str, n_trials: int, kills: int, rng: random.Random) -> int:
    """Two processes start one study at once; one is killed mid-study; the survivor must finish it."""
    victim, survivor = (start(uri, study, n_trials, "--sleep", "0.3") for _ in range(2))
    time.sleep(rng.uniform(4.0, 8.0))
    landed = int(victim.poll() is None)
    kill(victim)
    finish(survivor)
    return landed


def workers(uri: str, study: str, n_trials: int, kills: int, rng: random.Random) -> int:
    """Kill process workers under a live driver; it replaces them and runs their trials again."""
    driver = start(uri, study, n_trials, "--sleep", "0.5", "--executor", "process", "--max-retries", str(kills))
    time.sleep(5.0)
    landed = 0
    for _ in range(kills):
        time.sleep(rng.uniform(0.5, 2.0))
        children = pool_workers(driver.pid)
        if driver.poll() is not None or not children:
            break
        rng.choice(children).kill()
        landed += 1
    finish(driver)
    return landed


def pool_workers(driver: int) -> list[psutil.Process]:
    """The driver's live worker processes (a killed one stays a zombie until the driver reaps it)."""
    workers = []
    for child in psutil.Process(driver).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "multiprocessing" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.Error:
            continue
    return workers


SCENARIOS: dict[str, Callable[..., int]] = {"storm": storm, "rivals": rivals, "workers": workers}


@contextmanager
def stores(folder: Path, names: list[str]) -> Iterator[Iterator[tuple[str, str | None, str]]]:
    """Yield (store name, URI or None, why not) for each store asked for, starting servers as needed."""
    from hpo_tune.server import local_postgres, local_server

    with ExitStack() as stack:

        def each() -> Iterator[tuple[str, str | None, str]]:
            for name in names:
                where = folder / name
                where.mkdir()
                if name == "sqlite":
                    yield name, f"sqlite:///{where / 'mlflow.db'}", ""
                elif name in ("server-sqlite", "plain-server"):
                    yield name, stack.enter_context(local_server(where, plain=name == "plain-server")), ""
                else:
                    try:
                        backend = stack.enter_context(local_postgres(where))
                    except RuntimeError as error:
                        yield name, None, str(error).splitlines()[0]
                        continue
                    yield name, stack.enter_context(local_server(where, backend=backend)), ""

        yield each()


def run(quick: bool = False, store_names: list[str] | None = None, seed: int = 0) -> dict[tuple[str, str], dict]:
    """Every scenario on every store; prints one line each and returns the counts."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    rng = random.Random(seed)
    n_trials, kills = (12, 4) if quick else (40, 20)
    results = {}
    print(f"\nChaos: SIGKILLs at random moments; {n_trials} trials per study (0 lost, 0 duplicated, 0 running "
          "and 1 parent are the pass marks)")
    print(f"  {'store':<16} {'scenario':<8} " + " ".join(f"{c:>10}" for c in COLUMNS) + "   seconds")
    with tempfile.TemporaryDirectory() as tmp, stores(Path(tmp), store_names or list(STORES)) as each:
        for store, uri, why_not in each:
            if uri is None:
                print(f"  {store:<16} skipped: {why_not}")
                continue
            for scenario, play in SCENARIOS.items():
                started = time.perf_counter()
                landed = play(uri, scenario, n_trials, kills if scenario == "storm" else max(2, kills // 3), rng)
                counts = results[store, scenario] = {"kills": landed, **census(uri, scenario, n_trials)}
                print(f"  {store:<16} {scenario:<8} " + " ".join(f"{counts[c]:>10}" for c in COLUMNS)
                      + f"   {time.perf_counter() - started:7.1f}", flush=True)
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--stores", nargs="+", choices=STORES)
        arguments = parser.parse_args()
        run(arguments.quick, arguments.stores)
