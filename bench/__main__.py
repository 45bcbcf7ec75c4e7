"""All benchmarks, or one: ``python -m bench [tracking|overhead|parallel|proposals|training|chaos|ui|search|...] ...``.

Figures print as they are measured. Defaults take about twenty minutes on 2 CPU cores, most of it in
filling the 5,000-trial histories and in the kill storms; ``--quick`` uses small sizes to check the
bench itself runs. ``ui`` (screenshots of the MLflow UI in headless Chromium, about a minute) runs only when
named: it needs Debian's ``chromium``. So does ``search`` (search quality on functions with known minima: every
searcher x 10 seeds x budgets 25/50/100, about an hour on 2 free cores; ``--quick`` about a minute; ``--tables``
on real HPO tables instead, issue 26) and
``multifidelity`` (pruners on learning curves, issue 22: regret against epochs spent, wall time with 1 and 4 workers;
see ``bench/multifidelity``) and ``scale`` (N processes on one study beside Optuna's RDB storage, issue 24; see
``bench/scale.py``) and ``importance`` (parameter importance at 100 to 10,000 trials, issue 25, seconds) and
``t-sampling-domain`` (where t_sampling beats random and TPE, by dimensions and conditions on sub-spaces of real
tables, issue 26; see ``bench/search/domain.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import (
    chaos,
    importance_time,
    multifidelity,
    overhead,
    parallel_trials,
    proposal_time,
    scale,
    search,
    tracking_overhead,
    training_throughput,
    ui,
)
from bench.search import domain
from bench.search.functions import FUNCTIONS
from bench.search.runner import SEARCHERS
from bench.tables import TABLES
from hpo_tune.strategies import STRATEGIES

SECTIONS = ("tracking", "overhead", "parallel", "proposals", "training", "chaos", "ui", "search", "multifidelity",
            "scale", "importance", "t-sampling-domain")
DEFAULT_SECTIONS = ("tracking", "overhead", "parallel", "proposals", "training", "chaos")  # the others only when named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all but ui and search)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that every section runs")
    parser.add_argument("--sizes", type=int, nargs="+", help="history sizes for proposal times")
    parser.add_argument("--strategies", nargs="+", default=sorted(STRATEGIES), choices=sorted(STRATEGIES))
    parser.add_argument("--device", default="auto", help="device for the training throughput")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models in the throughput bench")
    parser.add_argument("--functions", nargs="+", choices=FUNCTIONS, help="search: functions (default: all)")
    parser.add_argument("--searchers", nargs="+", choices=SEARCHERS, help="search: searchers (default: all)")
    parser.add_argument("--seeds", type=int, help="search: seeds 0..N-1 (default 10; quick 2)")
    parser.add_argument("--budgets", type=int, nargs="+", help="search: trial budgets (default 25 50 100; quick 25)")
    parser.add_argument("--jobs", type=int, help="search: worker processes (default: the CPU count; "
                                                  "t-sampling-domain 1)")
    parser.add_argument("--levels", type=int, default=search.LEVELS,
                        help="search: values per numeric dimension of t_sampling's discretised spaces (default 5)")
    parser.add_argument("--real", action="store_true", help="search: add the smoke-scale LSTM and MNIST tasks")
    parser.add_argument("--keep", action="store_true", help="search: keep the other searchers' results already in "
                                                            "--out (re-run only the searchers named)")
    parser.add_argument("--tables", nargs="*", choices=TABLES,
                        help="search: real HPO tables (none named: all) instead of the functions, unless "
                             "--functions names some; t-sampling-domain: the tables to cut (default hpobench/kc1 "
                             "hpobench/phoneme nasbench201/cifar100; none named: all)")
    parser.add_argument("--out", type=Path, help="search: folder for the CSV, PNG and summary (default "
                                                 "bench/results/search; --quick search-quick; --tables search-tables)")
    parser.add_argument("--dims", type=int, nargs="+", choices=domain.DIMS,
                        help="t-sampling-domain: dimensions per sub-space (default 2..6; quick 2 3)")
    parser.add_argument("--conditions", type=int, nargs="+", choices=domain.CONDITIONS,
                        help="t-sampling-domain: conditions per dimension (default 2..5; quick 2 3)")
    parser.add_argument("--mf-searchers", nargs="+", choices=multifidelity.SEARCHERS,
                        help="multifidelity: searchers (default: all; quick TPESampler random)")
    parser.add_argument("--pruners", nargs="+", choices=multifidelity.PRUNERS,
                        help="multifidelity: pruners (default: all)")
    parser.add_argument("--problems", nargs="+", choices=multifidelity.PROBLEMS,
                        help="multifidelity: problems (default: all)")
    parser.add_argument("--multiples", type=int, nargs="+",
                        help="multifidelity: epoch budgets in max_epochs (default 1 3 10 30; quick 1 3 5)")
    parser.add_argument("--walltime-trials", type=int,
                        help="multifidelity: configurations per wall-time study, 0 for none (default 16; quick 6)")
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
    args.sections = args.sections or list(DEFAULT_SECTIONS)
    sizes = args.sizes or ([20, 50] if args.quick else [100, 1_000, 5_000])
    if "tracking" in args.sections:
        tracking_overhead.run(n_trials=10 if args.quick else 50, read_sizes=[20] if args.quick else [100, 1_000])
    if "overhead" in args.sections:
        overhead.run([20, 50] if args.quick else [200, 2_000], 12 if args.quick else 60)
    if "parallel" in args.sections:
        parallel_trials.run(n_trials=4 if args.quick else 32)
    if "proposals" in args.sections:
        proposal_time.run(sizes, args.strategies)
    if "training" in args.sections:
        training_throughput.run(args.device, 256 if args.quick else None, args.compile)
    if "chaos" in args.sections:
        chaos.run(quick=args.quick)
    if "ui" in args.sections:
        ui.run()
    if "search" in args.sections:
        tables = [] if args.tables is None else args.tables or list(TABLES)
        functions = args.functions or ([] if tables else list(search.QUICK_FUNCTIONS if args.quick else FUNCTIONS))
        search.run(functions + tables, args.searchers or list(SEARCHERS), args.seeds or (2 if args.quick else 10),
                   args.budgets or ([25] if args.quick else list(search.BUDGETS)), args.jobs, args.real,
                   args.out or (search.TABLES_OUT if tables else search.QUICK_OUT if args.quick else search.OUT),
                   args.levels, args.keep)
    if "t-sampling-domain" in args.sections:  # --tables (none named: all), --seeds, --jobs and --out as for search
        quick = args.quick
        named = args.tables or list(domain.QUICK_TABLES if quick else domain.TABLES)
        tables = list(TABLES) if args.tables == [] else named
        domain.run(tables, args.dims or list(domain.QUICK_DIMS if quick else domain.DIMS),
                   args.conditions or list(domain.QUICK_CONDITIONS if quick else domain.CONDITIONS),
                   args.seeds or (2 if quick else 10), args.jobs or 1,
                   args.out or (domain.QUICK_OUT if quick else domain.OUT))
    if "importance" in args.sections:
        importance_time.run([100, 1_000] if args.quick else [100, 1_000, 10_000])
    if "scale" in args.sections:
        scale.run([4] if args.quick else list(scale.WORKERS), list(scale.STORES), per_worker=2 if args.quick else 6)
    if "multifidelity" in args.sections:  # --seeds, --jobs and --out as for search
        quick, mf = args.quick, multifidelity
        multifidelity.run(args.problems or list(mf.PROBLEMS),
                          args.mf_searchers or list(mf.QUICK_SEARCHERS if quick else mf.SEARCHERS),
                          args.pruners or list(multifidelity.PRUNERS),
                          args.seeds or (multifidelity.QUICK_SEEDS if quick else multifidelity.SEEDS),
                          args.multiples or list(multifidelity.QUICK_MULTIPLES if quick else multifidelity.MULTIPLES),
                          args.jobs, args.out or (mf.QUICK_OUT if quick else mf.OUT), args.walltime_trials, quick)


if __name__ == "__main__":
    main()
