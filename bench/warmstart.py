"""Warm start on real tables (issue 25): does an earlier study on one task help a strategy on another?

For each pair ``source -> target`` of HPOBench tasks (the same MLP space on two datasets), each strategy and each
seed: a study of ``--source-trials`` trials on the source (the same strategy and seed, as a user's earlier study
would be), then two studies of ``--trials`` on the target, cold and warm-started from the source's finished
trials (``hpo_tune.strategies.prior.WarmStarted``, what ``warm_start=`` builds), its values shown as quantiles
(the default) and as recorded. Studies run on the real ``Driver`` with the in-memory store. Printed: the median
regret of the pick after 10 and 25 trials, cold and warm, and on how many seeds warm was better, equal or worse.

    python -m bench.warmstart --jobs 2                         # 8 pairs (4 both ways), 10 seeds: about 35 min
    python -m bench.warmstart --pairs kc1:phoneme --strategies optuna_tpe
"""

from __future__ import annotations

import argparse
import functools
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from bench.tables import HPOBENCH_TASKS, TableTask
from hpo_tune.storage.memory import run_in_memory
from hpo_tune.strategies import make_strategy
from hpo_tune.strategies.base import Strategy
from hpo_tune.strategies.prior import WarmStarted, prior_trials
from hpo_tune.trial import Trial, TrialContext, best_trial

STRATEGIES = ("optuna_tpe", "gamma_bo")  # gp_bo and random also run (random: warm = cold)
PAIRS = (("australian", "credit_g"), ("credit_g", "australian"), ("kc1", "phoneme"), ("phoneme", "kc1"),
         ("segment", "vehicle"), ("vehicle", "segment"), ("car", "blood_transfusion"), ("blood_transfusion", "car"))
CHECKPOINTS = (10, 25)
MODES = ("cold", "warm", "warm raw", "best first")  # warm: the earlier values as quantiles (the default)
OUT = Path(__file__).resolve().parent / "results" / "warmstart"


def _study(task: TableTask, strategy: Strategy, seed: int, trials: int) -> list[Trial]:
    def objective(params: dict, trial: TrialContext) -> float:
        return task.observe(params, seed, trial.number)

    return sorted(run_in_memory(strategy, objective, trials, seed=seed), key=lambda t: t.number)


def _regrets(task: TableTask, trials: list[Trial]) -> dict[int, float]:
    """The regret of the best observed trial among the first k, at each checkpoint."""
    return {k: task.regret(best_trial(trials[:k], task.direction).params) for k in CHECKPOINTS if k <= len(trials)}


def job(source: str, target: str, name: str, seed: int, source_trials: int, trials: int) -> list[dict]:
    """One seed of one strategy on one pair: the cold and the warm study's regrets."""
    earlier, task = TableTask(f"hpobench/{source}"), TableTask(f"hpobench/{target}")
    space = task.space()
    build = functools.partial(make_strategy, name, space, seed, task.direction)  # a fresh one per study
    done = _study(earlier, build(), seed, source_trials)
    rows = []
    for mode in MODES:
        started = time.perf_counter()
        if mode == "cold":
            strategy = build()
        elif mode == "best first":  # the earlier study's best configurations enqueued, its values not shown
            strategy = build(enqueue=[t.params for t in sorted(prior_trials(done, space), key=lambda t: -t.value)][:5])
        else:
            strategy = WarmStarted(build(), prior_trials(done, space), source,
                                   values="raw" if mode == "warm raw" else "quantile")
        regrets = _regrets(task, _study(task, strategy, seed, trials))
        rows += [{"pair": f"{source}->{target}", "strategy": name, "seed": seed, "mode": mode, "trials": k,
                  "regret": r, "seconds": time.perf_counter() - started} for k, r in regrets.items()]
    return rows


def summary(frame: pd.DataFrame) -> str:
    """Median regret cold and warm (both ways of showing the earlier values), and each warm start's wins, ties
    and losses against cold over the seeds, per pair, strategy and checkpoint."""
    header = ["pair", "strategy", "trials", "cold"] + [f"{m} | better / equal / worse" for m in MODES[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * (4 + 2 * len(MODES[1:]))]
    for (pair, strategy, k), group in frame.groupby(["pair", "strategy", "trials"], sort=False):
        wide = group.pivot(index="seed", columns="mode", values="regret")
        cells = [f"{wide['cold'].median():.4f}"]
        for mode in MODES[1:]:
            diff = wide[mode] - wide["cold"]
            cells += [f"{wide[mode].median():.4f}",
                      f"{int((diff < 0).sum())} / {int((diff == 0).sum())} / {int((diff > 0).sum())}"]
        lines.append(f"| {pair} | {strategy} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(pairs: list[tuple[str, str]], strategies: list[str], seeds: int, source_trials: int, trials: int,
        workers: int | None, out: Path) -> pd.DataFrame:
    jobs = [(s, t, name, seed, source_trials, trials) for s, t in pairs for name in strategies for seed in range(seeds)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        rows = [row for result in pool.map(job, *zip(*jobs)) for row in result]
    frame = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "results.csv", index=False)
    text = (f"Warm start on HPOBench (source study: {source_trials} trials of the same strategy; {seeds} seeds; "
            f"regret = best mean accuracy - the pick's mean)\n\n{summary(frame)}\n")
    (out / "summary.md").write_text(text)
    print(text)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=[f"{s}:{t}" for s, t in PAIRS],
                        help=f"source:target tasks, of {', '.join(HPOBENCH_TASKS)}")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--source-trials", type=int, default=50)
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--jobs", type=int, help="worker processes (default: the CPU count)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    pairs = [tuple(pair.split(":")) for pair in args.pairs]
    run(pairs, args.strategies, args.seeds, args.source_trials, args.trials, args.jobs, args.out)


if __name__ == "__main__":
    main()
