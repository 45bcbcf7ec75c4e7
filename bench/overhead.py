"""Orchestration overhead against Optuna: the project's ``optimize`` beside Optuna on SQLite and in memory.

The same instant objective (x squared over one float), the same kind of sampler (random), in one
process, one after the other at each size: the project with its local SQLite store (MLflow), Optuna
with an RDB storage on SQLite, and Optuna in memory. Each figure includes the study's start-up.
Prints milliseconds per trial, the ratio to Optuna on SQLite (the goal is <= 1.0), and what the
project's overhead is as a share of a 3-second trial, and what the writes a tracked trial needs cost
alone on the same kind of store, as the project makes them (one transaction for its start, one for its
end: the floor under the project's figure) and through MLflow's own calls. Then the share of a
study's wall time its strategy's tables and plots held it up (the parent run's ``artifacts_wait_s``;
the goal is <= 5%), for strategies that draw: factorial_grid on 9 factors and the BOs on 3 dimensions,
60 trials of 0.5 s.

    python -m bench overhead [--sizes 200 2000] [--explained 60]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SPACE = {"x": {"type": "float", "low": -5.0, "high": 5.0}}
TRIAL_S = 3.0  # the trial length the overhead is measured against


def project_ms(n_trials: int, folder: Path) -> float:
    from hpo_tune import optimize

    def instant(params: dict) -> float:
        return params["x"] ** 2

    return _timed(lambda: optimize(instant, SPACE, "random", n_trials=n_trials, study=f"overhead-{n_trials}",
                                   tracking_uri=f"sqlite:///{folder / 'hpo.db'}", progress=False,
                                   importance="none"), n_trials)


def optuna_ms(n_trials: int, storage: str | None) -> float:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)

    def study() -> None:
        made = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0),
                                   study_name=f"overhead-{n_trials}-{time.monotonic_ns()}")
        made.optimize(lambda trial: trial.suggest_float("x", -5.0, 5.0) ** 2, n_trials=n_trials)

    return _timed(study, n_trials)


def writes_ms(n_trials: int, folder: Path, way: str) -> float:
    """What a tracked trial cannot do without, alone, on the same kind of store: create its run (with its
    parameters as a tag), claim its number, log its result (with its params), end it. ``way``: "mlflow"
    (MLflow's own calls, four or more transactions) or "project" (one transaction for the start and one for
    the end, as the project writes them): the floor under the project's figure."""
    from mlflow.entities import Metric, Param, RunTag

    from hpo_tune.tracking.store import connect
    from hpo_tune.tracking.writes import StoreWrites, store_writes

    client = connect(f"sqlite:///{folder / 'writes.db'}")
    store = client._tracking_client.store
    writes = store_writes(store) if way == "project" else StoreWrites(store)
    experiment = client.create_experiment(f"writes-{time.monotonic_ns()}")
    ledger = client.create_run(experiment).info.run_id
    tags = {f"tag{k}": str(k) for k in range(13)}  # about as many as a trial's run gets when it starts

    def trials() -> None:
        for number in range(n_trials):
            run, _ = writes.start(experiment, f"trial-{number}", tags, ledger, f"{number}.0")
            writes.write(run, [Metric("objective", 0.25, 0, 0)], [Param("x", "0.5")],
                         [RunTag("claimed", "true"), RunTag("state", "COMPLETE")], status="FINISHED")

    return _timed(trials, n_trials)


def explained_share(strategy: str, options: dict, dims: int, n_trials: int, folder: Path) -> tuple[float, float]:
    """(seconds the study waited for its strategy's tables and plots, its wall seconds) for 0.5-s trials."""
    from mlflow.tracking import MlflowClient

    from hpo_tune import optimize

    def half_second(params: dict) -> float:
        time.sleep(0.5)
        return sum(float(v) for v in params.values())

    space = {f"f{k}": {"type": "float", "low": 0.0, "high": 1.0} for k in range(dims)}
    uri = f"sqlite:///{folder / 'explained.db'}"
    start = time.perf_counter()
    result = optimize(half_second, space, strategy, n_trials=n_trials, strategy_options=options,
                      study=f"explained-{strategy}", tracking_uri=uri, progress=False)
    wall = time.perf_counter() - start
    return MlflowClient(uri).get_run(result.parent_run_id).data.metrics["artifacts_wait_s"], wall


def _timed(run: Callable[[], object], n_trials: int) -> float:
    start = time.perf_counter()
    run()
    return 1000 * (time.perf_counter() - start) / n_trials


def run(sizes: list[int], explained: int = 60) -> dict[int, dict[str, float]]:
    print("\nOrchestration overhead per trial: an instant objective, random sampling, one process "
          "(study start-up included)")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        optuna_ms(2, None)  # imports on both sides before anything is timed
        project_ms(2, folder)
        for size in sizes:
            ours = project_ms(size, folder)
            rdb = optuna_ms(size, f"sqlite:///{folder / f'optuna-{size}.db'}")
            memory = optuna_ms(size, None)
            mlflow_calls, one_transaction = (writes_ms(size, folder, way) for way in ("mlflow", "project"))
            figures[size] = {"project": ours, "optuna_sqlite": rdb, "optuna_memory": memory,
                             "mlflow_calls": mlflow_calls, "project_writes": one_transaction}
            print(f"  {size:>6,} trials: project {ours:7.1f} ms, Optuna on SQLite {rdb:7.1f} ms, Optuna in memory "
                  f"{memory:6.2f} ms; project / Optuna-SQLite = {ours / rdb:4.2f}; overhead = "
                  f"{ours / (10 * TRIAL_S):.2f}% of a {TRIAL_S:.0f}-s trial; a trial's writes alone: "
                  f"{one_transaction:.1f} ms as the project makes them, {mlflow_calls:.1f} ms through MLflow's calls",
                  flush=True)
        print(f"Tables and plots as a share of a study's wall time ({explained} trials of 0.5 s)")
        for strategy, options, dims in (("factorial_grid", {"fraction": 4}, 9), ("gp_bo", {}, 3),
                                        ("gamma_bo", {}, 3)):
            options = {**options, "n_iterations": explained} if strategy != "factorial_grid" else options
            spent, wall = explained_share(strategy, options, dims, explained, folder)
            print(f"  {strategy:<15} {spent:5.1f} s of {wall:5.1f} s = {100 * spent / wall:4.1f}%", flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--explained", type=int, default=60, help="trials of the tables-and-plots studies")
    arguments = parser.parse_args()
    run(arguments.sizes, arguments.explained)
