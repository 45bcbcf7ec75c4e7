"""Reports: read studies back from MLflow and write the papers' comparison tables.

    python -m src.report seed000 [--scale smoke|paper] [--tracking-uri URI] [--out reports/seed000]

Each report is a list of comparisons (one per dataset) of studies that the presets create; it
writes markdown and CSV under ``--out`` and logs the same files, with headline numbers as
metrics, on a ``report-<name>`` run in each dataset's MLflow experiment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from src.tracking import Tracker
from src.trial import Direction


@dataclass(frozen=True)
class Comparison:
    """Studies on one problem, compared on the same footing."""

    experiment: str
    studies: tuple[str, ...]


def summarize(study: dict[str, Any], trials: pd.DataFrame) -> dict[str, Any]:
    """One study in a row: trainings, failures, the best trial (by the objective) and its other metrics."""
    attempts = trials[~trials["interrupted"]] if len(trials) else trials
    done = attempts[attempts["status"] == "FINISHED"] if len(attempts) else attempts
    row: dict[str, Any] = {
        "study": study["name"],
        "strategy": study["tags"].get("strategy", ""),
        "trainings": int((attempts["status"] != "RUNNING").sum()) if len(attempts) else 0,
        "failed": int((attempts["status"] == "FAILED").sum()) if len(attempts) else 0,
        "train_time_s": float(attempts["duration_s"].sum()) if len(attempts) else 0.0,
    }
    if len(done):
        direction = Direction(study["tags"].get("direction", "minimize"))
        best = done.loc[done["objective"].idxmin() if direction is Direction.MINIMIZE else done["objective"].idxmax()]
        row["best_objective"] = float(best["objective"])
        row |= {name.removeprefix("metric."): float(best[name]) for name in best.index
                if name.startswith("metric.test_") and pd.notna(best[name])}
        row["best_params"] = ", ".join(f"{name.removeprefix('param.')}={best[name]}" for name in best.index
                                       if name.startswith("param.") and pd.notna(best[name]))
    return row


def compare(tracker: Tracker, comparison: Comparison) -> pd.DataFrame:
    rows = []
    for name in comparison.studies:
        study, trials = tracker.study_frame(comparison.experiment, name)
        rows.append({"dataset": comparison.experiment, **summarize(study, trials)})
    return pd.DataFrame(rows)


def seed000(scale: str) -> list[Comparison]:
    """Tables 4-5 of seed 000: t-sampling against brute force on gold and BDI."""
    return [Comparison(dataset, tuple(f"seed000-{dataset}-{strategy}-{scale}" for strategy in ("t_sampling", "grid")))
            for dataset in ("gold", "bdi")]


def seed000_markdown(table: pd.DataFrame, scale: str) -> str:
    table = table.assign(method=table["strategy"].map({"grid": "Brute force", "t_sampling": "Proposed (t-sampling)"}))
    rmse = table.pivot(index="method", columns="dataset", values="test_rmse")
    trainings = table.pivot(index="method", columns="dataset", values="trainings")
    lines = [f"# Seed 000: staged t-sampling against brute force ({scale} scale)", "",
             "Table 4 analogue: test RMSE (scaled target) of the trial with the best validation RMSE.", "",
             rmse.to_markdown(floatfmt=".6f"), "",
             "Table 5 analogue: number of trainings.", "", trainings.to_markdown(), "",
             "All studies:", "", table.drop(columns=["method"]).to_markdown(index=False, floatfmt=".6g"), ""]
    return "\n".join(lines)


REPORTS = {"seed000": (seed000, seed000_markdown)}


def write(name: str, scale: str, tracker: Tracker, out: Path) -> pd.DataFrame:
    """Build report ``name`` from the tracking store, write it under ``out`` and log it to MLflow."""
    comparisons, markdown = REPORTS[name]
    parts = comparisons(scale)
    table = pd.concat([compare(tracker, c) for c in parts], ignore_index=True)
    files = {f"{name}.csv": table.to_csv(index=False), f"{name}.md": markdown(table, scale)}
    out.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        (out / file).write_text(content)
    for comparison in parts:
        mine = table[table["dataset"] == comparison.experiment]
        metrics = {f"{row.strategy}.{column}": getattr(row, column) for row in mine.itertuples()
                   for column in ("trainings", "best_objective", "test_rmse") if pd.notna(getattr(row, column, None))}
        tracker.log_report(comparison.experiment, f"{name}-{scale}", files, metrics)
    return table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a paper's comparison tables from the tracked studies.")
    parser.add_argument("name", choices=sorted(REPORTS))
    parser.add_argument("--scale", default="smoke", choices=("smoke", "paper"))
    parser.add_argument("--tracking-uri", default=f"sqlite:///{Path(__file__).resolve().parent.parent / 'mlflow.db'}")
    parser.add_argument("--out", type=Path, default=None, help="folder for the files (default: reports/<name>)")
    args = parser.parse_args(argv)
    try:
        table = write(args.name, args.scale, Tracker(args.tracking_uri), args.out or Path("reports") / args.name)
    except LookupError as missing:
        parser.exit(1, f"error: {missing}; run the study first (see the README)\n")
    print(REPORTS[args.name][1](table, args.scale))


if __name__ == "__main__":
    main()
