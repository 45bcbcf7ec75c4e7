"""The real-model check: seed 001 at medium scale with ``pruner=asha`` and ``pruner=hyperband``, against the
committed medium results (``results/medium/<preset>/<preset>_studies.csv``).

Run the studies first (resumable; about 10 minutes each for MNIST, 20-30 for CIFAR-10 on one core)::

    python -m src.tune experiment=seed001_mnist scale=medium pruner=asha study=mnist-asha-stop tracking.uri=U
    ... pruner=hyperband / pruner.mode=promote; experiment=seed001_cifar10 ...

then ``python -m bench.multifidelity.medium U`` prints one row per study: its best validation accuracy, the
committed medium best (the comparison's variant of highest accuracy), the epochs it trained (``completed``:
epochs reported; ``started``: plus the epoch in which each failed trial diverged) against the committed
study's (trainings x epochs per training, less the epochs its failed trials did not reach if each diverged in
its first), and the epochs it had started when its best came within 0.002 of the committed best.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {"mnist": "seed001_mnist", "cifar10": "seed001_cifar10"}
EPOCHS = {"seed001_mnist": 2, "seed001_cifar10": 8}  # per training at medium scale (conf/experiment_scale)
TOLERANCE = 0.002


def committed(preset: str) -> tuple[str, float, int, int]:
    """The committed medium best (the variant of highest validation accuracy): its variant, accuracy, trainings
    and how many of them failed."""
    rows = csv.DictReader((ROOT / "results" / "medium" / preset / f"{preset}_studies.csv").open())
    row = max(rows, key=lambda r: float(r["val_accuracy"]))
    return row["variant"], float(row["val_accuracy"]), int(float(row["trainings"])), int(float(row["failed"]))


def summarise(uri: str) -> list[dict[str, object]]:
    client = MlflowClient(uri)
    rows = []
    for experiment in client.search_experiments():
        for parent in client.search_runs([experiment.experiment_id], "tags.study != ''"):
            study = parent.data.tags["study"]
            preset = PRESETS.get(experiment.name)
            if preset is None:
                continue
            trials = client.search_runs([experiment.experiment_id],
                                        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
            trials = sorted((t for t in trials if t.data.tags.get("interrupted") != "true"),
                            key=lambda t: int(t.data.tags["trial"]))
            variant, best_committed, trainings, failed = committed(preset)
            spent = started = 0
            best, reached = 0.0, None
            for trial in trials:
                epochs = len(client.get_metric_history(trial.info.run_id, "val_accuracy"))
                spent += epochs
                started += epochs + (trial.info.status == "FAILED")
                if trial.info.status == "FINISHED":
                    best = max(best, trial.data.metrics.get("val_accuracy", 0.0))
                if reached is None and best >= best_committed - TOLERANCE:
                    reached = started
            rows.append({"study": study, "status": parent.info.status, "trials": len(trials),
                         "best_val_accuracy": round(best, 4), "committed_best": f"{best_committed} ({variant})",
                         "epochs_completed": spent, "epochs_started": started,
                         "committed_epochs": f"{(trainings - failed) * EPOCHS[preset] + failed}-"
                                             f"{trainings * EPOCHS[preset]}",
                         "started_when_within_0.002": reached})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="the tracking store the medium studies ran in")
    args = parser.parse_args()
    rows = summarise(args.uri)
    keys = list(rows[0]) if rows else []
    print("| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
