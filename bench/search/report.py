"""The search bench's tables and plot, from its rows (one per function, searcher, seed and budget)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.search.runner import ERROR, NOT_ACCEPTED, OPTUNA_SAMPLERS
from hpo_tune.plots import png, pyplot
from hpo_tune.strategies.factorial.tables import markdown

PLOT_FLOOR = 1e-6  # regrets below this (exact hits, rounding) are drawn at it on the log axis


def medians(rows: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Median regret over seeds, searchers x functions; NaN where no study of the searcher ran to its end."""
    ok = rows[(rows.budget == budget) & (rows.status == "ok")]
    table = ok.pivot_table(index="searcher", columns="function", values="regret", aggfunc="median", sort=False)
    return table.reindex(index=rows.searcher.unique(), columns=rows.function.unique())


def statuses(rows: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Why a cell has no regret: "error" if any seed's study raised, else "not accepted"."""
    at = rows[rows.budget == budget]
    failed = at.assign(error=at.status == ERROR).pivot_table(index="searcher", columns="function", values="error",
                                                             aggfunc="any", sort=False)
    labels = failed.reindex(index=rows.searcher.unique(), columns=rows.function.unique()).fillna(False)
    return labels.map(lambda error: ERROR if error else NOT_ACCEPTED)


def ranks(table: pd.DataFrame) -> pd.Series:
    """Mean rank of each searcher over the functions (1 = lowest median regret, ties averaged); a searcher
    without a result on a function (not accepted, or an error) shares the last places there."""
    filled = table.fillna(np.inf)
    return pd.Series(np.mean([rankdata(filled[f]) for f in filled.columns], axis=0), index=table.index)


def beats_random(table: pd.DataFrame) -> pd.Series:
    """'N of M': on how many of the M functions both ran the searcher's median regret is below random's."""
    both = table.notna() & table.loc["random"].notna()
    wins = (table < table.loc["random"]) & both
    return wins.sum(axis=1).astype(str) + " of " + both.sum(axis=1).astype(str)


def record(table: pd.DataFrame, other: str) -> pd.Series:
    """'W / T / L': on how many of the functions both ran the searcher's median regret is below, equal to and
    above ``other``'s (ties are common on tables, where searchers often pick the same configuration)."""
    both = table.notna() & table.loc[other].notna()
    wins, losses = ((table < table.loc[other]) & both).sum(axis=1), ((table > table.loc[other]) & both).sum(axis=1)
    ties = both.sum(axis=1) - wins - losses
    return wins.astype(str) + " / " + ties.astype(str) + " / " + losses.astype(str)


def summary(rows: pd.DataFrame) -> str:
    """Markdown: per budget the median regret table, then mean ranks and wins over random, then each
    searcher's record against the Optuna samplers that ran."""
    parts, rank_columns, records = [], {}, {}
    for budget in sorted(rows.budget.unique()):
        table = medians(rows, budget)
        cells = table.map(lambda v: f"{v:.3g}").where(table.notna(), statuses(rows, budget))
        seeds = rows[rows.budget == budget].seed.nunique()
        parts.append(f"### Median regret, budget {budget} ({seeds} seed{'s' * (seeds > 1)})\n\n"
                     + markdown(cells.reset_index()))
        rank_columns[f"mean rank, {budget}"] = ranks(table).map(lambda v: f"{v:.2f}")
        if "random" in table.index:
            rank_columns[f"beats random, {budget}"] = beats_random(table)
        for sampler in (s for s in OPTUNA_SAMPLERS if s in table.index):
            records[f"vs {sampler}, {budget}"] = record(table, sampler)
    parts.append("### Mean rank over the functions, and wins over random\n\n"
                 + markdown(pd.DataFrame(rank_columns).rename_axis("searcher").reset_index()))
    if records:
        own = pd.DataFrame(records).drop(index=list(OPTUNA_SAMPLERS), errors="ignore")
        parts.append("### Wins / ties / losses against Optuna's samplers (median regret, per function)\n\n"
                     + markdown(own.rename_axis("searcher").reset_index()))
    return "\n\n".join(parts) + "\n"


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Median regret over seeds after each trial, from the largest budget's studies (a study that finished
    early keeps its pick to the budget)."""
    largest = rows[(rows.status == "ok") & (rows.budget == rows.budget.max())]
    frames = []
    for (function, searcher), group in largest.groupby(["function", "searcher"], sort=False):
        length = int(group.budget.iloc[0])
        padded = np.array([np.pad(np.asarray(c, float), (0, length - len(c)), mode="edge") for c in group.curve])
        regret = padded - group.reference.to_numpy()[:, None]
        frames.append(pd.DataFrame({"function": function, "searcher": searcher, "trial": np.arange(1, length + 1),
                                    "median_regret": np.median(regret, axis=0)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["function", "searcher", "trial", "median_regret"])


def plot(curve: pd.DataFrame) -> bytes:
    """One panel per function: median regret against trials, log scale; one colour per searcher throughout,
    the legend in a panel of its own."""
    plt = pyplot()
    functions = list(curve.function.unique())
    colours = {searcher: f"C{k}" for k, searcher in enumerate(curve.searcher.unique())}
    columns = min(4, len(functions) + 1)
    nrows = -(-(len(functions) + 1) // columns)
    fig, axes = plt.subplots(nrows, columns, figsize=(4 * columns, 3.2 * nrows), squeeze=False)
    for ax, function in zip(axes.flat, functions):
        for searcher, group in curve[curve.function == function].groupby("searcher", sort=False):
            ax.plot(group.trial, np.maximum(group.median_regret, PLOT_FLOOR), colours[searcher], linewidth=1.2)
        ax.set_yscale("log")
        ax.set_title(function, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel("median regret")
    for ax in list(axes.flat)[len(functions):]:
        ax.axis("off")
    legend = axes.flat[len(functions)]
    for searcher, colour in colours.items():
        legend.plot([], [], colour, label=searcher)
    legend.legend(loc="center", fontsize=8, frameon=False)
    return png(fig)
