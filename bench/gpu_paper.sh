#!/usr/bin/env bash
# The largest paper-scale study that fits in about 10 minutes on one GPU (issue 13): seed 001 on
# CIFAR-10 at the paper's scale (all 50,000 training images, validated on the 10,000 test images,
# 50 epochs per trial, kappa as the objective) with Gamma BO of the learning rate, on the GPU fast
# path (data on the device, bf16 autocast, channels_last). It prints the device, the training
# throughput, then the study's best trial as JSON, and leaves its store in results/gpu/ (resumable:
# running it again continues the study).
#   bench/gpu_paper.sh                   # about 9 minutes of study; BUDGET_S=300 for less
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || source .venv/bin/activate
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
budget="${BUDGET_S:-540}"
mkdir -p results/gpu
python - <<'PY'
import torch
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU (this script needs one)")
PY
dvc pull -q data/cifar10 2>/dev/null || dvc pull -q
timeout 120 python -m bench training --device cuda || echo "throughput bench skipped (timed out or failed)"
start=$(date +%s)
timeout --signal=TERM "$budget" python -m src.tune experiment=seed001_cifar10 scale=paper strategy=gamma_bo \
  strategy.n_initial=2 strategy.n_iterations=4 device=cuda progress=false \
  "tracking.uri=sqlite:///$PWD/results/gpu/mlflow.db" summary=results/gpu/summary.json || echo "stopped at the budget: re-run to resume"
echo "study wall time: $(( $(date +%s) - start )) s"
python - <<'PY'
import json
from mlflow.tracking import MlflowClient
client = MlflowClient("sqlite:///results/gpu/mlflow.db")
experiment = client.get_experiment_by_name("cifar10")
for run in client.search_runs([experiment.experiment_id], "tags.trial != ''", order_by=["attributes.start_time"]):
    m = run.data.metrics
    print(f"trial {run.data.tags['trial']:>2} {run.info.status:<8} lr={run.data.params.get('trainer.lr', '?'):<10.8} "
          f"val_accuracy={m.get('val_accuracy', float('nan')):.4f} val_kappa={m.get('val_kappa', float('nan')):.4f} "
          f"time={m.get('duration_s', float('nan')):.0f} s")
PY
