"""The multi-fidelity bench's tables and plot, from its rows (one per problem, searcher, pruner and seed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from bench.multifidelity.runner import BASELINES
from hpo_tune.plots import png, pyplot
from hpo_tune.strategies.factorial.tables import markdown

CURVE_POINTS = 150  # epoch counts per method in curves.csv and the plot
PLOT_FLOOR = 1e-4  # regrets below this (exact hits) are drawn at it on the log axis


def method(searcher: str, pruner: str) -> str:
    return f"{searcher} + {pruner}"


def median_trace(group: pd.DataFrame) -> np.ndarray:
    """Median over seeds of the regret after each epoch spent (``inf``: no trial reached the last epoch yet)."""
    return np.median(np.array(list(group.trace), dtype=float), axis=0)


def _cell(value: float) -> str:
    return "none yet" if math.isinf(value) else f"{value:.3g}"


def regret_table(rows: pd.DataFrame, problem: str, epochs: int, multiples: list[int]) -> str:
    """Markdown: median regret at each budget of epochs, and counts of what the studies ran (medians)."""
    ok = rows[(rows.problem == problem) & (rows.status == "ok")]
    records = []
    for (searcher, pruner), group in ok.groupby(["searcher", "pruner"], sort=False):
        trace = median_trace(group)
        record = {"method": method(searcher, pruner)}
        record.update({f"{m}x ({m * epochs} ep.)": _cell(trace[m * epochs - 1]) if len(trace) >= m * epochs else "-"
                       for m in multiples})  # "-": past the studies' cap
        record.update({"seeds": str(len(group)), "trials": f"{group.trials.median():.0f}",
                       "reached last epoch": f"{group.reached_last.median():.0f}",
                       "s/study": f"{group.run_seconds.median():.2f}"})
        records.append(record)
    failed = rows[(rows.problem == problem) & (rows.status != "ok")]
    for (searcher, pruner), group in failed.groupby(["searcher", "pruner"], sort=False):
        records.append({"method": method(searcher, pruner), "trials": f"{len(group)} failed: {group.note.iloc[0]}"})
    return markdown(pd.DataFrame(records).fillna(""))


def epochs_to_match(rows: pd.DataFrame, problem: str, epochs: int) -> str:
    """Markdown: for each searcher, no pruning's median regret at the largest budget (``BASELINES``' searcher's
    for one that does not run without a pruner), and the fewest epochs at which each pruner's median regret is
    as low (and that count over the budget, and in max_epochs)."""
    ok = rows[(rows.problem == problem) & (rows.status == "ok")]
    records = []
    for searcher, by_searcher in ok.groupby("searcher", sort=False):
        of = BASELINES.get(searcher, searcher)
        baseline = ok[(ok.searcher == of) & (ok.pruner == "none")]
        if baseline.empty:
            continue
        cap = int(baseline.cap.iloc[0])
        target = median_trace(baseline)[-1]
        for pruner, group in by_searcher.groupby("pruner", sort=False):
            trace = median_trace(group)
            hits = np.flatnonzero(trace <= target)
            needed = int(hits[0]) + 1 if hits.size else None
            records.append({"searcher": searcher, "pruner": pruner, "against": f"{of} + none",
                            "its median regret": _cell(target), "at epochs": str(cap),
                            "epochs to match it": str(needed) if needed else f"not within {cap}",
                            "of none's epochs": f"{needed / cap:.2f}" if needed else "-",
                            "in max_epochs": f"{needed / epochs:.1f}" if needed else "-"})
    return markdown(pd.DataFrame(records))


def curves(rows: pd.DataFrame, points: int = CURVE_POINTS) -> pd.DataFrame:
    """Median regret against epochs spent, per problem and method (``inf`` before any trial reached the end), at
    about ``points`` log-spaced epoch counts (where the median changes, a step is drawn from the last point)."""
    frames = []
    for (problem, searcher, pruner), group in rows[rows.status == "ok"].groupby(["problem", "searcher", "pruner"],
                                                                                 sort=False):
        trace = median_trace(group)
        at = np.unique(np.geomspace(1, len(trace), points).round().astype(int))
        frames.append(pd.DataFrame({"problem": problem, "searcher": searcher, "pruner": pruner,
                                    "epochs": at, "median_regret": trace[at - 1]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["problem", "searcher", "pruner", "epochs", "median_regret"])


def plot(curve: pd.DataFrame, epochs: dict[str, int]) -> bytes:
    """One panel per problem: median regret against epochs spent (in units of max_epochs, log axes); one colour
    per searcher, one line style per pruner; the legend in a panel of its own."""
    plt = pyplot()
    problems = list(curve.problem.unique())
    searchers = list(curve.searcher.unique())
    colours = {s: f"C{k}" for k, s in enumerate(searchers)}
    styles = dict(zip(["none", "asha", "asha_promote", "hyperband"], ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(1, len(problems) + 1, figsize=(5.2 * len(problems) + 2, 4), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * len(problems) + [0.4]})
    for ax, problem in zip(axes.flat, problems):
        for (searcher, pruner), group in curve[curve.problem == problem].groupby(["searcher", "pruner"], sort=False):
            finite = np.isfinite(group.median_regret)
            ax.step(group.epochs[finite] / epochs[problem], np.maximum(group.median_regret[finite], PLOT_FLOOR),
                    colours[searcher], where="post", linestyle=styles.get(pruner, "-"), linewidth=1.1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_title(f"{problem} (max_epochs {epochs[problem]})", fontsize=9)
        ax.set_xlabel("epochs spent / max_epochs")
        ax.set_ylabel("median regret")
    legend = axes.flat[len(problems)]
    legend.axis("off")
    for searcher, colour in colours.items():
        legend.plot([], [], colour, label=searcher)
    for pruner, style in styles.items():
        if pruner in set(curve.pruner):
            legend.plot([], [], "k", linestyle=style, label=f"pruner {pruner}")
    legend.legend(loc="center", fontsize=8, frameon=False)
    return png(fig)
