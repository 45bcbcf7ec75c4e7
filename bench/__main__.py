"""All benchmarks, or one: ``python -m bench [tracking|overhead|parallel|proposals|training|chaos|ui] [options]``.

Figures print as they are measured. Defaults take about twenty minutes on 2 CPU cores, most of it in
filling the 5,000-trial histories and in the kill storms; ``--quick`` uses small sizes to check the
bench itself runs. ``ui`` (screenshots of the MLflow UI in headless Chromium, about a minute) runs only when
named: it needs Debian's ``chromium``.
"""

from __future__ import annotations

import argparse

from bench import chaos, overhead, parallel_trials, proposal_time, tracking_overhead, training_throughput, ui
from src.strategies import STRATEGIES

SECTIONS = ("tracking", "overhead", "parallel", "proposals", "training", "chaos", "ui")
DEFAULT_SECTIONS = ("tracking", "overhead", "parallel", "proposals", "training", "chaos")  # ui: only when named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all but ui)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that every section runs")
    parser.add_argument("--sizes", type=int, nargs="+", help="history sizes for proposal times")
    parser.add_argument("--strategies", nargs="+", default=sorted(STRATEGIES), choices=sorted(STRATEGIES))
    parser.add_argument("--device", default="auto", help="device for the training throughput")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models in the throughput bench")
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


if __name__ == "__main__":
    main()
