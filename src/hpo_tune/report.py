"""Reports: read studies back from MLflow and write comparison tables and plots.

A comparison (an experiment preset's ``comparison`` node, run by ``python -m hpo_tune.compare``) is a
set of variants (strategies or settings), each studied under several seeds. The report gives, per
variant, the mean and spread over seeds of the best objective, the best trial's other metrics
(test RMSE, ...), the number of trainings, the training time and the trainings needed to come
within 1% of the best value any study found; a best-so-far plot; and the per-study rows. It writes
markdown, CSV, PNG and a metrics JSON (for ``dvc metrics show``) under ``out``, with each study's
own artifacts (its strategy's tables and plots, the best confusion matrix) under
``out/studies/<study>/``, and logs the report files, with the headline numbers as metrics, on a
``report-<name>`` run in the MLflow experiment. ``index`` (``python -m hpo_tune.report reports``) joins
the reports found under a folder into one ``README.md`` there.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpo_tune.plots import png, pyplot
from hpo_tune.tracking import Tracker
from hpo_tune.trial import Direction

WITHIN = 0.01  # "trainings to come within 1% of the best known value"
EVERY_STUDY = "## Every study"  # the heading that starts a report's per-study table


@dataclass(frozen=True)
class PaperFigure:
    """One of the paper's headline figures, and which of our measures (of which variant) it is read against."""

    what: str
    paper: str
    variant: str
    measure: str  # a column of the summary: best_objective, trainings, test_rmse, val_accuracy, ...
    note: str = ""  # the gap between its setting and ours that this figure depends on


@dataclass(frozen=True)
class Comparison:
    """Which studies to compare and how to present them."""

    name: str
    experiment: str
    scale: str
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    title: str = ""
    caption: str = ""
    columns: tuple[str, ...] = ()  # best-trial metrics to show beside the objective, e.g. test_rmse
    paper: tuple[PaperFigure, ...] = ()
    gaps: str = ""  # the data and settings that differ from the paper's, said once beside its figures

    def study(self, variant: str, seed: int) -> str:
        return f"{self.name}-{variant}-s{seed}-{self.scale}"

    @classmethod
    def from_config(cls, node: Mapping[str, Any], experiment: str, scale: str) -> Comparison:
        return cls(name=node["name"], experiment=experiment, scale=scale, seeds=tuple(node["seeds"]),
                   variants=tuple(k for k, v in node["variants"].items() if v is not None),  # null: left out
                   title=node.get("title", ""), caption=node.get("caption", ""),
                   columns=tuple(node.get("columns", ())),
                   paper=tuple(PaperFigure(**{k: str(v) for k, v in figure.items()})
                               for figure in node.get("paper", ())),
                   gaps=node.get("gaps", "") or "")


def best_so_far(trials: pd.DataFrame, direction: Direction) -> np.ndarray:
    """The best objective after each training, in trial order (failed trainings repeat the last best)."""
    attempts = trials[~trials["interrupted"] & (trials["status"] != "RUNNING")].sort_values("number")
    values = np.where(attempts["status"] == "FINISHED", attempts["objective"], np.nan).astype(float)
    losses = np.array([direction.loss(v) if np.isfinite(v) else np.inf for v in values])
    running = np.minimum.accumulate(losses) if len(losses) else losses
    return np.array([direction.loss(v) if np.isfinite(v) else np.nan for v in running])


def summarize(study: dict[str, Any], trials: pd.DataFrame) -> dict[str, Any]:
    """One study in a row: trainings, failures, times, and the best trial with its other metrics."""
    direction = Direction(study["tags"].get("direction", "minimize"))
    attempts = trials[~trials["interrupted"] & (trials["status"] != "RUNNING")] if len(trials) else trials
    done = attempts[attempts["status"] == "FINISHED"] if len(attempts) else attempts
    row: dict[str, Any] = {
        "study": study["name"],
        "run_id": study["run_id"],
        "status": study["status"],
        "strategy": study["tags"].get("strategy", ""),
        "trainings": len(attempts),
        "failed": int((attempts["status"] == "FAILED").sum()) if len(attempts) else 0,
        "train_time_s": float(attempts["duration_s"].sum()) if len(attempts) else 0.0,
        "wall_time_s": ((study["end"] or study["start"]) - study["start"]) / 1000,
        "commit": _commit(study["tags"]),
    }
    if len(done):
        best = done.loc[done["objective"].idxmin() if direction is Direction.MINIMIZE else done["objective"].idxmax()]
        row["best_objective"] = float(best["objective"])
        row |= {name.removeprefix("metric."): float(best[name]) for name in best.index
                if name.startswith("metric.") and name.removeprefix("metric.") not in ("objective", "duration_s")
                and pd.notna(best[name])}
        row["best_params"] = ", ".join(f"{name.removeprefix('param.')}={best[name]}" for name in best.index
                                       if name.startswith("param.") and pd.notna(best[name]))
    return row


def collect(tracker: Tracker, comparison: Comparison) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]], Direction]:
    """Per-study rows and best-so-far curves per variant."""
    rows, curves, direction = [], {}, Direction.MINIMIZE
    for variant in comparison.variants:
        for seed in comparison.seeds:
            name = comparison.study(variant, seed)
            try:
                study, trials = tracker.study_frame(comparison.experiment, name)
            except LookupError:  # it failed before its first trial: a row without results says so
                rows.append({"variant": variant, "seed": seed, "study": name, "status": "MISSING", "trainings": 0})
                curves.setdefault(variant, []).append(np.array([]))
                continue
            direction = Direction(study["tags"].get("direction", "minimize"))
            rows.append({"variant": variant, "seed": seed, **summarize(study, trials)})
            curves.setdefault(variant, []).append(best_so_far(trials, direction) if len(trials) else np.array([]))
    table = pd.DataFrame(rows)
    for column in ("run_id", "best_objective", "train_time_s"):  # absent when no study got that far
        if column not in table:
            table[column] = np.nan
    best_known = table["best_objective"].min() if direction is Direction.MINIMIZE else table["best_objective"].max()
    ordered = [curve for variant in comparison.variants for curve in curves[variant]]
    table["trainings_to_1pct"] = [_reach(curve, best_known) for curve in ordered]
    budget = min((len(curve) for curve in ordered if len(curve)), default=0)  # a study yet to start has none
    table["best_at_budget"] = [curve[budget - 1] if budget and len(curve) >= budget else np.nan for curve in ordered]
    table.attrs["budget"] = budget
    return table, curves, direction


def _commit(tags: Mapping[str, str]) -> str:
    """The short commit that made a study (``+dirty`` with uncommitted changes), as its parent run records it."""
    commit = tags.get("mlflow.source.git.commit", "")[:7]
    return f"{commit}+dirty" if commit and tags.get("code.dirty") == "true" else commit


def _reach(curve: np.ndarray, target: float) -> float:
    """Trainings until the best-so-far is within 1% of ``target`` (NaN if never)."""
    close = np.abs(curve - target) <= WITHIN * abs(target)
    return float(np.argmax(close) + 1) if close.any() else float("nan")


def aggregate(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds, per variant."""
    measures = ["best_objective", "best_at_budget", *[c for c in columns if c in table], "trainings", "train_time_s",
                "trainings_to_1pct"]
    grouped = table.groupby("variant", sort=False)[measures]
    summary = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_sd"))
    summary.insert(0, "studies", grouped.size())
    summary.insert(1, "reached_1pct", table.groupby("variant", sort=False)["trainings_to_1pct"].count())
    return summary[["studies", "reached_1pct", *[f"{m}_{s}" for m in measures for s in ("mean", "sd")]]].reset_index()


def _cell(mean: float, sd: float) -> str:
    return "-" if pd.isna(mean) else (f"{mean:.4g}" if pd.isna(sd) else f"{mean:.4g} ± {sd:.2g}")


def against_paper(comparison: Comparison, summary: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The paper's headline figures beside ours (mean ± sd over seeds), with the scale and commits of ours."""
    if not comparison.paper:
        return []
    rows = []
    for figure in comparison.paper:
        found = summary[summary["variant"] == figure.variant]
        column = f"{figure.measure}_mean"
        ours = (_cell(found[column].iloc[0], found[f"{figure.measure}_sd"].iloc[0])
                if len(found) and column in found else "-")
        rows.append({"figure": figure.what, "paper": figure.paper, "ours": ours,
                     "ours from": f"`{figure.variant}`, {figure.measure}", "note": figure.note})
    commits = sorted({c for c in table.get("commit", pd.Series(dtype=str)).dropna() if c})
    lines = ["## Against the paper", "",
             f"Ours at {comparison.scale} scale, from studies made at commit(s) {', '.join(commits) or 'unknown'}.",
             ""]
    if comparison.gaps:
        gaps = comparison.gaps.strip()
        lines += [f"**Gaps against the paper.** {gaps[0].upper()}{gaps[1:]}", ""]
    return [*lines, pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), ""]


def baseline_part(baseline: Mapping[str, float] | None) -> list[str]:
    """The naive forecast (next month = this month), the floor a series model's RMSEs are read against."""
    if not baseline:
        return []
    row = {name: f"{value:.6g}" for name, value in baseline.items()}
    return ["## Naive baseline: persistence", "",
            "The forecast that next month equals this month, on the same validation and test months (scaled "
            "target, and original units). A model worth its training beats it.", "",
            pd.DataFrame([{"forecast": "persistence", **row}]).to_markdown(index=False, disable_numparse=True), ""]


def markdown(comparison: Comparison, summary: pd.DataFrame, table: pd.DataFrame,
             baseline: Mapping[str, float] | None = None) -> str:
    cell = _cell

    measures = ["best_objective", "best_at_budget", *[c for c in comparison.columns if f"{c}_mean" in summary],
                "trainings", "train_time_s", "trainings_to_1pct"]
    shown = pd.DataFrame({"variant": summary["variant"], "studies": summary["studies"],
                          **{m: [cell(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_sd"])]
                             for m in measures}})
    keep = ["variant", "seed", "best_objective", "best_at_budget", *[c for c in comparison.columns if c in table],
            "trainings", "failed", "train_time_s", "trainings_to_1pct", "best_params", "commit", "status", "error"]
    lines = [f"# {comparison.title or comparison.name} ({comparison.scale} scale)", ""]
    if comparison.caption:
        lines += [comparison.caption.strip(), ""]
    broken = table[table["status"] != "FINISHED"]
    if len(broken):
        lines += [f"**{len(broken)} of {len(table)} studies did not finish** ({', '.join(broken['study'])}); their "
                  "rows below hold what they tracked before they stopped, and the error where this run saw it.", ""]
    lines += [f"Mean ± standard deviation over seeds {list(comparison.seeds)}. `best_at_budget` is the best value "
              f"after {table.attrs.get('budget', 0)} trainings, the smallest budget any study that ran used, so "
              "every variant is compared on equal terms there; `trainings_to_1pct` counts the trainings a study "
              "needed to come within 1% of the best value any study found.", "",
              shown.to_markdown(index=False), "", *baseline_part(baseline),
              *against_paper(comparison, summary, table),
              f"![best so far]({comparison.name}_best_so_far.png)", "",
              EVERY_STUDY, "", table[[c for c in keep if c in table]].to_markdown(index=False, floatfmt=".6g"),
              ""]
    return "\n".join(lines)


def median_curves(curves: Mapping[str, list[np.ndarray]]) -> pd.DataFrame:
    """Best so far against trainings, the median over seeds per variant (a column each), for DVC plots."""
    longest = max((len(c) for runs in curves.values() for c in runs), default=0)
    columns = {}
    for variant, runs in curves.items():
        padded = np.array([np.pad(c.astype(float), (0, longest - len(c)), constant_values=np.nan) for c in runs])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN tails past a variant's budget
            columns[variant] = np.nanmedian(padded, axis=0) if len(padded) else np.full(longest, np.nan)
    return pd.DataFrame({"trainings": np.arange(1, longest + 1), **columns})


def plot_curves(comparison: Comparison, curves: Mapping[str, list[np.ndarray]]) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    medians = median_curves(curves)
    for index, (variant, runs) in enumerate(curves.items()):
        colour = f"C{index}"
        for curve in runs:
            ax.plot(np.arange(1, len(curve) + 1), curve, color=colour, alpha=0.2, linewidth=0.8)
        ax.plot(medians["trainings"], medians[variant], color=colour, linewidth=2, label=variant)
    ax.set_xlabel("trainings")
    ax.set_ylabel("best objective so far")
    ax.set_xscale("log")
    ax.set_title(f"{comparison.name} ({comparison.scale}): median over seeds, thin lines: each seed", fontsize=9)
    ax.legend(fontsize=8)
    return png(fig, dpi=110)


def write(tracker: Tracker, comparison: Comparison, out: Path, failures: Mapping[str, str] | None = None,
          baseline: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Build the report from the tracking store, write it under ``out`` and log it to MLflow.

    ``failures`` maps the studies that raised in this run to their error, shown in the per-study table;
    ``baseline`` is a naive forecast's RMSEs, shown (and recorded as metrics) beside the variants.
    """
    table, curves, _ = collect(tracker, comparison)
    if failures:
        table["error"] = table["study"].map(failures)
    summary = aggregate(table, comparison.columns)
    metrics = {f"{row['variant']}.{column}": row[column] for row in summary.to_dict("records")
               for column in summary.columns if column.endswith("_mean") and pd.notna(row[column])}
    metrics |= {f"persistence.{name}": value for name, value in (baseline or {}).items()}
    name = comparison.name
    files: dict[str, str | bytes] = {
        f"{name}.md": markdown(comparison, summary, table, baseline),
        f"{name}_summary.csv": summary.to_csv(index=False),
        f"{name}_studies.csv": table.to_csv(index=False),
        f"{name}_best_so_far.png": plot_curves(comparison, curves),
        f"{name}_curves.csv": median_curves(curves).to_csv(index=False),
        f"{name}_metrics.json": json.dumps(metrics, indent=2, default=float) + "\n",
    }
    out.mkdir(parents=True, exist_ok=True)
    for file, content in files.items():
        (out / file).write_bytes(content.encode() if isinstance(content, str) else content)
    for row in table.dropna(subset=["run_id"]).itertuples():  # each study's own tables and plots
        tracker.download(row.run_id, out / "studies" / row.study)
    tracker.log_report(comparison.experiment, f"{name}-{comparison.scale}", files, metrics)
    return summary


INDEX_INTRO = """# Paper reproductions and strategy comparison

Written by `dvc repro` (`python -m hpo_tune.report reports`) from each preset's report below; each
section is the head of `<preset>/<preset>.md`, which also lists every study. Per variant: mean ±
standard deviation over seeds of the best objective found (`best_objective`), of the best value
after the smallest budget any study used (`best_at_budget`: the equal-budget comparison), of the
best trial's other metrics, of the trainings, of the summed training time, and of the trainings a
study needed to come within 1% of the best value any study found (`trainings_to_1pct`; `-`: never).
The curves are the best objective so far against trainings (median over seeds, thin lines per seed).
The studies themselves are in MLflow: `mlflow ui --backend-store-uri sqlite:///reports/mlflow.db`.
"""


def summary_part(report: Path) -> str:
    """A comparison report without its per-study table: the title, the summary table and the plot."""
    return report.read_text().split(f"\n{EVERY_STUDY}")[0].rstrip()


def index(root: Path) -> Path:
    """``root/README.md``: the summary part of every ``root/<name>/<name>.md``, links made relative to ``root``."""
    sections = [INDEX_INTRO]
    for report in sorted(root.glob("*/*.md")):
        if report.stem != report.parent.name:
            continue
        folder = report.parent.name
        head = summary_part(report)
        head = re.sub(r"^# ", "## ", head, count=1)
        head = re.sub(r"\]\((?!https?:)([^)]+)\)", rf"]({folder}/\1)", head)
        sections.append(f"{head}\n\nFull report: [{folder}/{report.name}]({folder}/{report.name})\n")
    out = root / "README.md"
    out.write_text("\n".join(sections))
    return out


if __name__ == "__main__":
    print(index(Path(sys.argv[1] if len(sys.argv) > 1 else "reports")))
