#!/usr/bin/env bash
# Comparisons at a scale that means something (issue 13), resumable: re-run after an interruption
# and every finished trial is kept. The studies go to results/<scale>.db (git ignores it); the
# reports (markdown, CSV, curves) to results/<scale>/<preset>/, which are committed.
#   results/run.sh medium                     # all five presets at medium scale (about an hour each)
#   results/run.sh paper                      # the paper-scale runs a CPU can do: seed 000, seed 001 MNIST
#   WORKERS=2 results/run.sh paper seed001_mnist
# One seed per variant at paper scale; trials run in WORKERS process workers (default 1, leaving a
# core for other work), each on one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || source .venv/bin/activate  # the README's venv, unless one is active
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
scale="${1:?usage: results/run.sh medium|paper [preset ...]}"
shift
case "$scale" in
  medium) default="seed002_dogs seed001_mnist seed000_gold seed000_bdi seed001_cifar10" ;;
  paper) default="seed000_gold seed000_bdi seed001_mnist" ;;
  *) echo "scale must be medium or paper" >&2; exit 2 ;;
esac
store="sqlite:///$PWD/results/$scale.db"
for preset in ${*:-$default}; do
  echo "== $preset at $scale scale ($(date -u +%FT%TZ), commit $(git rev-parse --short HEAD))"
  seeds=$([ "$scale" = paper ] && echo "comparison.seeds=[0]" || true)
  python -m src.compare "experiment=$preset" "scale=$scale" $seeds executor=process \
    "executor.n_workers=${WORKERS:-1}" threads=1 progress=false "tracking.uri=$store" \
    "comparison.out=results/$scale/$preset"
done
