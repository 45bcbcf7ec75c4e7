"""Many workers on one study (issue 24): N processes at once, each running the same study of sleep-only trials.

    python -m bench scale                      # or: python -m bench.scale [--workers 4 16 64] [--stores ...]

For each store and each N, N processes start together and each runs one study of ``N x --per-worker``
trials that only sleep ``--sleep`` seconds (the project: ``optimize`` with the random strategy, as
``bench.chaos`` workers with ``optimize``'s default ``poll_interval_s`` of 2 s; Optuna: ``study.optimize``
with its RandomSampler and ``MaxTrialsCallback`` counting running trials too, on its RDB storage over the
same kind of database). Printed per row:

- ``trials/s``: finished trials over the time from launch to the last trial's end, start-up included;
  ``efficiency``: that over the ideal ``N / sleep``; ``steady/s``: the rate from the first trial's start on;
- ``first``: seconds from launch to the first trial's start (process start-up, imports, opening the study);
- ``twice``: trial numbers finished more than once (the project), or trials past the budget (Optuna);
- ``queries``: SQL statements per trial the workers sent (local stores), or HTTP requests per trial they
  sent (through a server; the server's own statements are not counted); ``--by-route`` adds a line per
  row with the requests per trial of each route;
- ``cpu/worker`` and ``cpu/trial``: the workers' CPU seconds (user + system, start-up included; a server's
  own are not counted) per worker and per trial: on a machine with fewer cores than workers, what bounds
  the rate;
- ``store/trial``: CPU seconds per trial of the processes behind the store that the bench started (the
  server, PostgreSQL with its exited backends), over the same span.

Stores: ``sqlite`` (a local file), ``server-sqlite`` and ``server-postgres`` (the project's server, as
``bench.chaos`` starts them), ``optuna-sqlite`` and ``optuna-postgres``. PostgreSQL needs Debian's binaries; a
store that cannot start is skipped, saying why. ``--profile`` writes one worker's cProfile per row.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
STORES = ("sqlite", "server-sqlite", "server-postgres", "optuna-sqlite", "optuna-postgres")
WORKERS = (4, 16, 64)
POLL_INTERVAL_S = 2.0  # optimize's default: how often a process with nothing left to start looks again
QUERY_COUNT_ENV = "BENCH_SCALE_QUERIES"  # a worker appends its SQL statement count to this file at exit


@dataclass(frozen=True)
class Row:
    store: str
    workers: int
    trials: int
    seconds: float
    first_s: float
    steady_s: float
    twice: int
    queries: int | None
    sleep: float
    cpu_s: float  # the workers' CPU seconds (user + system), start-up included
    store_cpu_s: float  # the CPU seconds of the processes behind the store (a server, PostgreSQL) meanwhile
    routes: Counter  # the workers' HTTP requests by "METHOD /path"

    def line(self) -> str:
        rate = self.trials / self.seconds
        steady = self.trials / self.steady_s if self.steady_s > 0 else float("nan")
        queries = "-" if self.queries is None else f"{self.queries / max(self.trials, 1):.1f}"
        efficiency = rate * self.sleep / self.workers
        return (f"  {self.store:<16} {self.workers:>4} {self.trials:>6} {rate:>9.2f} {efficiency:>10.2f}"
                f" {steady:>9.2f} {self.first_s:>7.1f} {self.twice:>6} {queries:>8}"
                f" {self.cpu_s / self.workers:>10.2f} {self.cpu_s / max(self.trials, 1):>10.3f}"
                f" {self.store_cpu_s / max(self.trials, 1):>10.3f}")


HEADER = (f"  {'store':<16} {'N':>4} {'trials':>6} {'trials/s':>9} {'efficiency':>10} {'steady/s':>9} {'first':>7}"
          f" {'twice':>6} {'queries':>8} {'cpu/worker':>10} {'cpu/trial':>10} {'store/trial':>10}")


def count_queries() -> None:
    """In a worker: count the SQL statements every SQLAlchemy engine sends and the HTTP requests by route, and
    append them to the counts file at exit (one JSON line per worker)."""
    path = os.environ.get(QUERY_COUNT_ENV)
    if not path:
        return
    import requests
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sql, routes = [0], Counter()
    event.listen(Engine, "before_cursor_execute", lambda *args: sql.__setitem__(0, sql[0] + 1))
    send = requests.Session.send

    def counted(session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> object:
        routes[f"{request.method} {urlparse(request.url).path}"] += 1
        return send(session, request, **kwargs)

    requests.Session.send = counted
    atexit.register(lambda: Path(path).open("a").write(json.dumps({"sql": sql[0], "routes": routes}) + "\n"))


def optuna_worker(argv: list[str]) -> None:
    """``optuna-worker URL STUDY N_TRIALS --sleep S``: one process of an Optuna study on RDB storage."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale optuna-worker")
    parser.add_argument("url")
    parser.add_argument("study")
    parser.add_argument("n_trials", type=int)
    parser.add_argument("--sleep", type=float, default=1.0)
    args = parser.parse_args(argv)
    count_queries()
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=args.url, sampler=optuna.samplers.RandomSampler())

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(args.sleep)
        return x

    study.optimize(objective, callbacks=[MaxTrialsCallback(args.n_trials, states=None)])


def project_worker(argv: list[str]) -> None:
    """``project-worker URI STUDY N_TRIALS --sleep S``: ``bench.chaos``'s worker, its queries counted."""
    count_queries()
    from bench import chaos

    chaos.worker([*argv, "--poll-interval", str(POLL_INTERVAL_S)])


def launch(kind: str, uri: str, study: str, n_trials: int, sleep: float, queries: Path, profile: Path | None,
           index: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench.scale", f"{kind}-worker", uri, study, str(n_trials), "--sleep", str(sleep)]
    if profile is not None and index == 0:
        command[1:1] = ["-m", "cProfile", "-o", str(profile)]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, QUERY_COUNT_ENV: str(queries)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def project_times(uri: str, study: str) -> tuple[list[tuple[float, float]], int]:
    """(start, end) of each finished trial run, and the numbers finished more than once."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent = next(r for e in client.search_experiments() for r in client.search_runs([e.experiment_id],
                                                                                      f"tags.study = '{study}'"))
    runs = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                              max_results=50_000)
    done = [r for r in runs if r.info.status == "FINISHED"]
    twice = sum(n > 1 for n in Counter(r.data.tags["trial"] for r in done).values())
    return [(r.info.start_time / 1000, r.info.end_time / 1000) for r in done], twice


def optuna_times(url: str, study: str, n_trials: int) -> tuple[list[tuple[float, float]], int]:
    import optuna

    trials = optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in done], max(0, len(done) - n_trials)


def measure(store: str, uri: str, workers: int, per_worker: int, sleep: float, folder: Path,
            profile: Path | None) -> Row:
    study, n_trials = f"scale-{store}-{workers}", workers * per_worker
    queries = folder / f"queries-{store}-{workers}.txt"
    kind = "optuna" if store.startswith("optuna") else "project"
    if kind == "optuna":
        import optuna

        optuna.create_study(study_name=study, storage=uri)  # the schema and the study, before the workers race
    else:
        from mlflow.tracking import MlflowClient

        MlflowClient(uri).search_experiments()  # the store's schema, before the workers race
    cpu_before, behind = children_cpu(), store_processes()
    store_before = processes_cpu(behind)
    started = time.time()
    processes = [launch(kind, uri, study, n_trials, sleep, queries, profile, i) for i in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=max(600, 20 * n_trials * sleep / workers))
        if process.returncode != 0:
            raise RuntimeError(f"a {store} worker exited {process.returncode}: {err.strip()[-1500:]}")
    cpu, store_cpu = children_cpu() - cpu_before, processes_cpu(behind) - store_before
    times, twice = optuna_times(uri, study, n_trials) if kind == "optuna" else project_times(uri, study)
    first = min(start for start, _ in times)
    last = max(end for _, end in times)
    counted = [json.loads(line) for line in queries.read_text().splitlines()] if queries.exists() else []
    routes = sum((Counter(c["routes"]) for c in counted), Counter())
    sent = sum(c["sql"] for c in counted) if store in ("sqlite", "optuna-sqlite", "optuna-postgres") else routes.total()
    return Row(store, workers, len(times), last - started, first - started, last - first, twice,
               sent if counted else None, sleep, cpu, store_cpu, routes)


def store_processes() -> list:
    """The processes this bench started before the workers: the server and PostgreSQL behind a store."""
    import psutil

    return psutil.Process().children(recursive=True)


def processes_cpu(processes: list) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def uris(folder: Path, names: list[str]) -> Iterator[Iterator[tuple[str, str | None, str]]]:
    """(store, URI or None, why not): the project's stores as ``bench.chaos`` starts them; Optuna's on a file or
    on a throwaway PostgreSQL."""
    from bench.chaos import stores
    from hpo_tune.server import local_postgres

    ours = [n for n in names if not n.startswith("optuna")]
    with ExitStack() as stack:
        project = stack.enter_context(stores(folder, ours))

        def each() -> Iterator[tuple[str, str | None, str]]:
            yield from project
            for name in (n for n in names if n.startswith("optuna")):
                if name == "optuna-sqlite":
                    yield name, f"sqlite:///{folder / 'optuna.db'}", ""
                    continue
                try:
                    yield name, stack.enter_context(local_postgres(folder / name)), ""
                except RuntimeError as error:
                    yield name, None, str(error).splitlines()[0]

        yield each()


def run(workers: list[int], store_names: list[str], per_worker: int = 6, sleep: float = 1.0,
        profile_dir: Path | None = None, by_route: bool = False) -> list[Row]:
    """Every store at every N; prints a row as each is measured."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(f"\nScale: N processes on one study of N x {per_worker} trials that sleep {sleep} s (ideal: N / {sleep} "
          f"trials/s); {os.cpu_count()} CPUs")
    print(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, uris(Path(tmp), store_names) as each:
        for store, uri, why_not in each:
            if uri is None:
                print(f"  {store:<16} skipped: {why_not}")
                continue
            for n in workers:
                profile = None if profile_dir is None else profile_dir / f"{store}-{n}.prof"
                try:
                    row = measure(store, uri, n, per_worker, sleep, Path(tmp), profile)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    print(f"  {store:<16} {n:>4} failed: {error}", flush=True)
                    continue
                rows.append(row)
                print(row.line(), flush=True)
                if by_route and row.routes:
                    print("      per trial: " + ", ".join(f"{route} {count / row.trials:.1f}"
                                                         for route, count in row.routes.most_common()), flush=True)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("optuna-worker", "project-worker"):
        (optuna_worker if sys.argv[1] == "optuna-worker" else project_worker)(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKERS))
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=STORES)
    parser.add_argument("--per-worker", type=int, default=6, help="trials per worker in the budget (default 6)")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each trial sleeps (default 1)")
    parser.add_argument("--profile", type=Path, help="folder for one worker's cProfile per row")
    parser.add_argument("--by-route", action="store_true", help="print the HTTP requests per trial of each route")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    run(args.workers, args.stores, args.per_worker, args.sleep, args.profile, args.by_route)


if __name__ == "__main__":
    main()
