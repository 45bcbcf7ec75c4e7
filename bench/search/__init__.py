"""Search quality: regret of every searcher on functions with known minima, at equal trial budgets.

``python -m bench search`` runs each searcher (``runner.SEARCHERS``: the project strategies that can
run a black-box function, and Optuna's TPESampler and GPSampler used directly; per_epoch does not
apply, it tunes a training epoch by epoch) on each function (``functions``: Branin, Hartmann-6 and a
mixed int/choice Hartmann-6, each plain and noisy) for every seed and budget, in a process pool over
(function, searcher, seed). Regret: the noise-free value of the trial with the best *observed* value,
minus the function's minimum (see ``runner``). ``--real`` adds two smoke-scale trainings (``real``)
on the first ``REAL_SEEDS`` seeds. ``--tables`` runs on real HPO tables instead (``bench.tables``: HPOBench MLPs,
NAS-Bench-201; all seeds), a pick scored by its configuration's mean over the table's training seeds against the
table's best mean, and writes to ``TABLES_OUT``.

Printed, and written to ``--out`` as ``summary.md``: per budget the median regret of each searcher on
each function, then each searcher's mean rank over the functions (ties averaged; no result, i.e. not
accepted or an error, ranks last) and on how many functions its median beats random's, then each searcher's
wins, ties and losses against each Optuna sampler (medians compared per function). Also written:
``results.csv`` (one row per study: function, searcher, seed, budget, status, trials run and failed,
regret, the picked configuration, seconds), ``curves.csv`` and ``regret.png`` (median regret against
trials at the largest budget, one panel per function).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from bench.search import report
from bench.search.functions import FUNCTIONS, Synthetic, floor
from bench.search.runner import DISCRETISED, LEVELS, SEARCHERS, Job, Problem, run_job
from bench.tables import TABLES, TableTask

REAL = ("lstm_gold", "lr_mnist")
REAL_SEEDS = 3
BUDGETS = (25, 50, 100)
QUICK_FUNCTIONS = ("branin", "mixed_noisy")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
COLUMNS = ("function", "searcher", "seed", "budget", "status", "trials", "failed", "regret", "picked_loss", "reference",
           "best_observed_loss", "run_seconds", "picked", "note")  # results.csv
OUT = Path(__file__).resolve().parent.parent / "results" / "search"
QUICK_OUT = OUT.with_name("search-quick")  # --quick checks that the bench runs; git ignores its output
TABLES_OUT = OUT.with_name("search-tables")


def problem(name: str) -> Problem:
    """A function, a table (``TABLES``) or, for the names in ``REAL``, a real task (imported only then: it loads
    torch and data)."""
    if name in TABLES:
        return TableTask(name)
    if name in REAL:
        from bench.search.real import RealTask

        return RealTask(name)
    return Synthetic(name)


def jobs_for(functions: list[str], searchers: list[str], seeds: int, budgets: list[int], real: bool,
             levels: int = LEVELS) -> list[Job]:
    """Every (problem, searcher, seed); the slowest searchers first (``SEARCHERS``' order)."""
    problems = [(f, seeds) for f in functions] + [(r, min(seeds, REAL_SEEDS)) for r in REAL if real]
    ordered = [s for s in SEARCHERS if s in searchers]
    return [Job(name, searcher, seed, tuple(budgets), levels)
            for searcher in ordered for name, n_seeds in problems for seed in range(n_seeds)]


def execute(jobs: list[Job], workers: int, problems: Callable[[str], Problem] = problem) -> list[dict[str, Any]]:
    """Run the jobs, in a pool of ``workers`` spawned processes with one BLAS/OMP thread each (inline for 1);
    ``problems`` builds a job's problem from its name (a module-level function, for the spawned workers)."""
    rows: list[dict[str, Any]] = []
    if workers == 1:
        for job in tqdm(jobs, desc="search", unit="job"):
            rows += run_job(job, problems)
        return rows
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # inherited by the workers, read as they import
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_job, job, problems) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="search", unit="job"):
            rows += future.result()
    return rows


def with_regret(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows with ``reference`` (the known minimum, a table's best mean as a loss, or for a real task the best loss
    any searcher observed on it in this run) and ``regret`` (picked loss minus reference, rounded to 1e-12: two
    configurations of equal mean on a table can differ by 1e-14 in floating point, which would decide a tie), in a
    stable order."""
    frame = pd.DataFrame(rows).sort_values(["function", "searcher", "seed", "budget"], kind="stable")
    references = {f: (TableTask(f) if f in TABLES else Synthetic(f)).minimum for f in frame.function.unique()
                  if f in FUNCTIONS or f in TABLES}
    for name in set(frame.function) - set(references):
        references[name] = frame.loc[frame.function == name, "best_observed_loss"].min()
    frame["reference"] = frame.function.map(references)
    frame["regret"] = (frame.picked_loss - frame.reference).round(12)
    return in_searcher_order(frame, "function", "seed", "budget")[[*COLUMNS, "curve"]]


def in_searcher_order(frame: pd.DataFrame, *within: str) -> pd.DataFrame:
    """Rows by searcher in ``SEARCHERS``' order (the tables' rows and the plot's colours), then by ``within``."""
    order = {name: k for k, name in enumerate(SEARCHERS)}
    return frame.sort_values(["searcher", *within], key=lambda c: c.map(order) if c.name == "searcher" else c,
                             kind="stable").reset_index(drop=True)


def run(functions: list[str], searchers: list[str], seeds: int, budgets: list[int], workers: int | None = None,
        real: bool = False, out: Path = OUT, levels: int = LEVELS, keep: bool = False) -> str:
    """Run the bench, print and write its tables and plot; returns the summary (markdown). ``keep``: the other
    searchers' rows and curves already in ``out`` join this run's, so a change to one strategy re-runs only it
    (the bench is deterministic: a searcher whose code did not change gives the same figures)."""
    jobs = jobs_for(functions, searchers, seeds, budgets, real, levels)
    print(f"\nSearch quality: {len(jobs)} jobs ({len(functions) + real * len(REAL)} problems x "
          f"{len(searchers)} searchers x up to {seeds} seeds), budgets {budgets}", flush=True)
    rows = with_regret(execute(jobs, workers or os.cpu_count() or 1))
    curve = report.curves(rows)
    rows = rows.drop(columns="curve")
    if keep and (out / "results.csv").is_file():
        kept, kept_curves = pd.read_csv(out / "results.csv"), pd.read_csv(out / "curves.csv")
        rows = in_searcher_order(pd.concat([kept[~kept.searcher.isin(searchers)], rows]), "function", "seed", "budget")
        curve = in_searcher_order(pd.concat([kept_curves[~kept_curves.searcher.isin(searchers)], curve]))
    text = report.summary(rows)
    discretised = [s for s in rows.searcher.unique() if s in DISCRETISED]  # kept ones too
    synthetic = [f for f in functions if f in FUNCTIONS]
    if discretised and synthetic:
        text += (f"\n{', '.join(discretised)}: {levels} levels per numeric dimension; the lattice's own regret: "
                 + ", ".join(f"{f} {floor(f, levels):.3g}" for f in synthetic) + "\n")
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "results.csv", index=False)
    curve.to_csv(out / "curves.csv", index=False)
    (out / "regret.png").write_bytes(report.plot(curve))
    (out / "summary.md").write_text(text)
    print(f"written: {', '.join(str(out / f) for f in ('results.csv', 'curves.csv', 'regret.png', 'summary.md'))}")
    return text
