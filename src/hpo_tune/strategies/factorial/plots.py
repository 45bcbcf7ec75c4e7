"""The factorial's figures: Pareto chart and half-normal plot of the effects, main effects, interactions.

They are drawn on bare figures (``hpo_tune.plots.subplots``), off pyplot, since the driver draws them in a
background thread.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from hpo_tune.plots import png, subplots
from hpo_tune.strategies.factorial.analysis import Analysis
from hpo_tune.strategies.factorial.design import Factor
from hpo_tune.trial import Direction


def pareto(analysis: Analysis, alpha: float) -> bytes:
    """Each term's |t| against the significance threshold."""
    table = analysis.effects.iloc[1: len(analysis.terms)]
    size = np.abs(table["t"].to_numpy(dtype=float))
    size[~np.isfinite(size)] = np.nan  # Lenth's PSE is 0 when most effects are exactly 0: no bar
    order = np.argsort(size)
    fig, ax = subplots(figsize=(6, 1.2 + 0.32 * len(table)))
    ax.barh(range(len(table)), size[order], color=["tab:red" if s > analysis.threshold else "tab:gray"
                                                   for s in size[order]])
    ax.set_yticks(range(len(table)), [table["term"].iat[i] for i in order], fontsize=8)
    ax.axvline(analysis.threshold, color="black", linestyle="--",
               label=f"t(1-{alpha}/2, {analysis.df:.3g} df) = {analysis.threshold:.3f}")
    ax.set_xlabel(f"standardized effect |t| ({analysis.error})")
    ax.set_title("Pareto chart of standardized effects", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return png(fig)


def half_normal(analysis: Analysis) -> bytes:
    """|effect| against half-normal quantiles: noise lies on a line through 0, real effects off it."""
    table = analysis.effects.iloc[1: len(analysis.terms)]
    size = np.abs(table["effect"].to_numpy(dtype=float))
    order = np.argsort(size)
    m = len(size)
    quantiles = stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
    fig, ax = subplots(figsize=(6, 4.5))
    ax.scatter(size[order], quantiles,
               color=["tab:red" if table["significant"].iat[i] else "tab:blue" for i in order])
    for x, q, i in zip(size[order], quantiles, order):
        ax.annotate(table["term"].iat[i], (x, q), textcoords="offset points", xytext=(4, -3), fontsize=7)
    effect_se = 2 * float(table["std_err"].iat[0])
    if math.isfinite(effect_se) and effect_se > 0:
        ax.plot(effect_se * quantiles, quantiles, color="gray", linestyle="--", label="noise (|effect| ~ 2 se)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("|effect|")
    ax.set_ylabel("half-normal quantile")
    ax.set_title("Half-normal plot of effects (red: significant)", fontsize=10)
    return png(fig)


def main_effects(analysis: Analysis, factors: Sequence[Factor], direction: Direction) -> bytes:
    """The mean objective at each factor's two levels."""
    coded, y = _factorial_runs(analysis, len(factors))
    k = len(factors)
    fig, axes = subplots(1, k, figsize=(2.4 * k + 0.8, 3.2), sharey=True, squeeze=False)
    for ax, (i, factor) in zip(axes[0], enumerate(factors)):
        means = [y[coded[:, i] == level].mean() for level in (-1, 1)]
        ax.plot([0, 1], means, marker="o")
        ax.axhline(y.mean(), color="gray", linestyle=":", linewidth=0.8)
        ax.set_xticks([0, 1], [str(v) for v in factor.levels])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(factor.name, fontsize=9)
    axes[0][0].set_ylabel(f"mean objective ({direction.value})")
    fig.suptitle("Main effects", fontsize=10)
    return png(fig)


def interactions(analysis: Analysis, factors: Sequence[Factor]) -> bytes:
    """For each pair of factors, the first's level means at each level of the second (needs two factors)."""
    coded, y = _factorial_runs(analysis, len(factors))
    pairs = list(itertools.combinations(range(len(factors)), 2))
    columns = min(3, len(pairs))
    rows = math.ceil(len(pairs) / columns)
    fig, axes = subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for ax, (i, j) in zip(axes.flat, pairs):
        for level, style in ((-1, "o--"), (1, "s-")):
            means = [y[(coded[:, i] == a) & (coded[:, j] == level)].mean() for a in (-1, 1)]
            ax.plot([0, 1], means, style, label=f"{factors[j].name} = {factors[j].value(level)}")
        ax.set_xticks([0, 1], [str(v) for v in factors[i].levels])
        ax.set_xlim(-0.3, 1.3)
        ax.set_xlabel(factors[i].name, fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(pairs):]:
        ax.set_visible(False)
    fig.suptitle("Two-factor interactions (mean objective)", fontsize=10)
    return png(fig)


def _factorial_runs(analysis: Analysis, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The coded rows and values of the fitted runs that are not centre runs."""
    factorial = [i for i, r in enumerate(analysis.used) if r.phase == "factorial"]
    coded = np.array([analysis.used[i].coded for i in factorial]).reshape(len(factorial), k)
    return coded, np.array([analysis.values[i] for i in factorial])
