"""Multi-fidelity pruning (issue 22): regret against epochs spent, and wall time with 1 and 4 workers.

``python -m bench multifidelity`` runs every searcher with every pruner (``runner``: Optuna's TPESampler
with its NopPruner, SuccessiveHalvingPruner and HyperbandPruner; the project's strategies with pruner
none, asha, asha_promote and hyperband; bohb with the halving ones) on two learning-curve problems, for
``--seeds`` seeds each (default 10), until each study has spent ``max(--multiples) x max_epochs`` epochs
(default 30 x; gp_bo and gamma_bo stop at 10 x: ``SLOW_MULTIPLE``). The default run took 18 minutes with
``--jobs 1`` on a 2-core machine shared with another process (3 of them the wall-time studies; ``--jobs``
defaults to the CPU count); ``--quick`` (TPESampler and random, 2 seeds, 5 x, short wall-time studies) under a
minute. Every study of the regret tables is deterministic for its seed; the wall times are of whatever else
the machine ran. The problems:

- ``digits``: a table of real trainings (``digits_table``: 288 configurations of a small MLP on
  scikit-learn's digits, 40 epochs, 3 training seeds), searched through its real dimensions (``digits``);
  accuracy, maximised; regret in accuracy.
- ``hartmann6_mf``: the multi-fidelity Hartmann-6 of Kandasamy et al. (``hartmann``), 27 epochs, minimised.

Printed as each problem finishes, and written to ``--out`` as ``summary.md``: the median regret over seeds
at each epoch budget (``--multiples`` of max_epochs) for every method, with the trials it ran; then, per
searcher, the fewest epochs at which each pruner's median regret matches no pruning's at the largest
budget (and that as a share of no pruning's epochs). Then the wall-time table (``walltime``; digits
only). Also written: ``results.csv`` (one row per study: counts, epochs spent, seconds, the regret at each
budget), ``curves.csv`` (median regret against epochs spent, at 150 log-spaced counts), ``regret.png`` (those
curves, one panel per problem; a regret of 0 drawn at 1e-4) and ``walltime.csv``. In the tables "none yet" is
a median without an incumbent (promote mode pauses every trial at its first rung until a third of a rung can
go on, so no trial has reached the last epoch after 1 or 3 x max_epochs), and "-" a budget past the cap.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from bench.multifidelity import report, walltime
from bench.multifidelity.runner import OPTUNA_SEARCHERS, PRUNERS, SEARCHERS, Job, Problem, pruners_for, run_job
from bench.search import THREAD_VARIABLES

PROBLEMS = ("digits", "hartmann6_mf")
MULTIPLES = (1, 3, 10, 30)  # epoch budgets, in max_epochs
QUICK_MULTIPLES = (1, 3, 5)
SEEDS, QUICK_SEEDS = 10, 2
SLOW = ("gp_bo", "gamma_bo")  # a proposal over hundreds of pruned trials takes them a second or more: ...
SLOW_MULTIPLE = 10  # ... they stop at 10 x max_epochs (at 30 x, digits took ~100 s a study with a pruner, not ~8)
QUICK_SEARCHERS = ("TPESampler", "random")
WALLTIME_TRIALS, QUICK_WALLTIME_TRIALS = 16, 6
QUICK_WALLTIME_SCALE = 0.25
QUICK_WALLTIME_PRUNERS = ("asha_promote",)  # the project's, with --quick (Optuna's: all, they take a second)
OUT = Path(__file__).resolve().parent.parent / "results" / "multifidelity"
QUICK_OUT = OUT / "quick"  # --quick checks that the bench runs; git ignores its output (OUT/.gitignore)
SLOW_FIRST = ("gp_bo", "gamma_bo", "optuna_tpe", "bohb", "TPESampler", "random")  # so that the pool's tail is short


def problem(name: str) -> Problem:
    if name == "digits":
        from bench.multifidelity.digits import DigitsTable

        return DigitsTable()
    if name == "hartmann6_mf":
        from bench.multifidelity.hartmann import MFHartmann

        return MFHartmann()
    raise ValueError(f"unknown problem {name!r}; choose from {list(PROBLEMS)}")


def jobs_for(problems: list[str], searchers: list[str], pruners: list[str], seeds: int,
             multiples: list[int]) -> list[Job]:
    """Every (problem, searcher, pruner, seed) with a cap of ``max(multiples)`` x the problem's max_epochs (at most
    ``SLOW_MULTIPLE`` x for the searchers in ``SLOW``)."""
    ordered = sorted(searchers, key=lambda s: SLOW_FIRST.index(s) if s in SLOW_FIRST else len(SLOW_FIRST))
    def cap(searcher: str) -> int:
        return min(max(multiples), SLOW_MULTIPLE) if searcher in SLOW else max(multiples)

    return [Job(name, searcher, pruner, seed, cap(searcher) * problem(name).epochs)
            for name in problems for searcher in ordered for pruner in pruners_for(searcher) if pruner in pruners
            for seed in range(seeds)]


def execute(jobs: list[Job], workers: int, on_problem_done: Any = None) -> list[dict[str, Any]]:
    """Run the jobs in a pool of ``workers`` spawned processes (one BLAS thread each; inline for 1); call
    ``on_problem_done(name, rows)`` as each problem's last job finishes."""
    rows: list[dict[str, Any]] = []
    left = Counter(job.problem for job in jobs)

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        left[row["problem"]] -= 1
        if left[row["problem"]] == 0 and on_problem_done is not None:
            on_problem_done(row["problem"], [r for r in rows if r["problem"] == row["problem"]])

    if workers == 1:
        for job in tqdm(jobs, desc="multifidelity", unit="study"):
            done(run_job(job, problem))
        return rows
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # inherited by the workers, read as they import
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_job, job, problem) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="multifidelity", unit="study"):
            done(future.result())
    return rows


def tables(rows: pd.DataFrame, name: str, multiples: list[int]) -> str:
    epochs = problem(name).epochs
    seeds = rows[rows.problem == name].seed.nunique()
    return (f"### {name}: median regret at budgets of epochs (up to {seeds} seeds, max_epochs {epochs})\n\n"
            + report.regret_table(rows, name, epochs, multiples)
            + f"\n\n### {name}: epochs each pruner needs to match no pruning's final median regret\n\n"
            + report.epochs_to_match(rows, name, epochs) + "\n")


def results_frame(rows: pd.DataFrame, multiples: list[int]) -> pd.DataFrame:
    """One row per study, with its regret at each budget (``inf``: no trial had reached the last epoch)."""
    frame = rows.drop(columns="trace").copy()
    for m in multiples:
        frame[f"regret_{m}x"] = [trace[m * problem(p).epochs - 1] if len(trace) >= m * problem(p).epochs
                                 else float("nan") for p, trace in zip(rows.problem, rows.trace)]
    return frame


def run(problems: list[str], searchers: list[str], pruners: list[str], seeds: int, multiples: list[int],
        workers: int | None = None, out: Path = OUT, walltime_trials: int | None = None, quick: bool = False) -> str:
    """Run the bench, print and write its tables and plot; returns the summary (markdown). ``quick``: the
    wall-time studies are shorter (``QUICK_*``)."""
    if walltime_trials is None:
        walltime_trials = QUICK_WALLTIME_TRIALS if quick else WALLTIME_TRIALS
    scale = QUICK_WALLTIME_SCALE if quick else walltime.SCALE
    jobs = jobs_for(problems, searchers, pruners, seeds, multiples)
    print(f"\nMulti-fidelity pruning: {len(jobs)} studies ({len(problems)} problems x {len(searchers)} searchers x "
          f"their pruners of {pruners} x {seeds} seeds), each until {max(multiples)} x max_epochs epochs",
          flush=True)
    parts: dict[str, str] = {}

    def finished(name: str, problem_rows: list[dict[str, Any]]) -> None:
        parts[name] = tables(pd.DataFrame(problem_rows), name, multiples)
        tqdm.write("\n" + parts[name])

    rows = pd.DataFrame(execute(jobs, workers or os.cpu_count() or 1, finished))
    order = {(s, p): k for k, (s, p) in enumerate((s, p) for s in SEARCHERS for p in PRUNERS)}
    rows["_problem"], rows["_method"] = rows.problem.map(problems.index), [order[s, p] for s, p in
                                                                           zip(rows.searcher, rows.pruner)]
    rows = rows.sort_values(["_problem", "_method", "seed"]).drop(columns=["_problem", "_method"]).reset_index(
        drop=True)
    text = "".join(tables(rows, name, multiples) + "\n" for name in problems)
    out.mkdir(parents=True, exist_ok=True)
    if "digits" in problems and walltime_trials > 0:
        optuna_pruners = [p for p in pruners if p in pruners_for(OPTUNA_SEARCHERS[0])]
        project_pruners = [p for p in pruners if p in pruners_for("random")
                           and (not quick or p in QUICK_WALLTIME_PRUNERS)]
        times = walltime.run(problem("digits"), walltime_trials, optuna_pruners, project_pruners, scale)
        times.to_csv(out / "walltime.csv", index=False)
        text += (f"### digits: wall time, epochs replayed as sleeps (x{scale}), {walltime_trials} "
                 "configurations per study\n\n" + walltime.markdown_table(times) + "\n")
        print("\n" + text[text.index("### digits: wall time"):], flush=True)
    results_frame(rows, multiples).to_csv(out / "results.csv", index=False)
    curve = report.curves(rows)
    curve.to_csv(out / "curves.csv", index=False)
    (out / "regret.png").write_bytes(report.plot(curve, {name: problem(name).epochs for name in problems}))
    (out / "summary.md").write_text(text)
    written = ["results.csv", "curves.csv", "regret.png", "summary.md"] + ["walltime.csv"] * ("digits" in problems
                                                                                            and walltime_trials > 0)
    print(f"written: {', '.join(str(out / f) for f in written)}")
    return text
