#!/usr/bin/env bash
# The paper-scale comparisons a CPU can run (issue 13): seed 000 on gold and BDI, seed 001 on MNIST,
# one seed per variant, trials in process workers. Resumable: re-run after an interruption and
# every finished trial is kept. The studies go to results/paper.db (git ignores it); the reports
# (markdown, CSV, curves) to results/paper/<preset>/, which are committed.
#   WORKERS=2 results/run_paper_cpu.sh            # default 1 worker: leaves a core for other work
#   results/run_paper_cpu.sh seed001_mnist        # one preset
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || source .venv/bin/activate  # the README's venv, unless one is active
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
store="sqlite:///$PWD/results/paper.db"
presets=("${@:-seed000_gold seed000_bdi seed001_mnist}")
for preset in ${presets[@]}; do
  echo "== $preset ($(date -u +%FT%TZ), commit $(git rev-parse --short HEAD))"
  python -m src.compare "experiment=$preset" scale=paper "comparison.seeds=[0]" executor=process \
    "executor.n_workers=${WORKERS:-1}" threads=1 progress=false "tracking.uri=$store" \
    "comparison.out=results/paper/$preset"
done
