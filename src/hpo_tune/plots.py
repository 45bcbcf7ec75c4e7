"""Plot helpers: figures are drawn off-screen and handed around as PNG bytes (MLflow artifacts)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), imported only when a plot is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Any, Any]:
    """``pyplot.subplots`` without pyplot: the figure is registered nowhere, so nothing needs closing, and
    a background thread can draw it while pyplot is used elsewhere."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, laid out tightly; a pyplot figure is closed.

    The layout engine ``tight_layout`` leaves behind is removed before saving: it would make ``savefig``
    lay out and draw the figure once more (about a fifth of the time) for the same pixels.
    """
    fig.tight_layout()
    fig.set_layout_engine(None)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix (rows true, columns predicted) with its counts written in the cells."""
    plt = pyplot()
    size = 1.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    return png(fig, dpi=110)


def importance_bars(table: pd.DataFrame, title: str) -> bytes:
    """A study's parameter importances (``hpo_tune.importance``), largest on top; with a factorial's OLS main
    effects in the table, their sizes beside them on the same rows (red: significant), to see where they agree."""
    rows = table.iloc[::-1]
    effects = "ols_effect" in rows
    fig, axes = subplots(1, 2 if effects else 1, figsize=(8.5 if effects else 6, 1.2 + 0.35 * len(rows)),
                         sharey=True, squeeze=False)
    ax = axes[0][0]
    ax.barh(range(len(rows)), rows["importance"], color="tab:blue")
    ax.set_yticks(range(len(rows)), rows["param"], fontsize=8)
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title(title, fontsize=10)
    if effects:
        ols = axes[0][1]
        ols.barh(range(len(rows)), rows["ols_effect"].abs(),
                 color=["tab:red" if s else "tab:gray" for s in rows["ols_significant"].eq(True)])
        ols.set_xlabel("|effect| (objective units; red: significant)")
        ols.set_title("factorial OLS main effects", fontsize=10)
    return png(fig)


def pareto_scatter(points: np.ndarray, on_front: np.ndarray, names: Sequence[str], title: str) -> bytes:
    """Trials of a study of several objectives on its first two (one point each), the Pareto front's trials
    marked and joined in order of the first objective, so the trade-off reads at a glance."""
    fig, ax = subplots(figsize=(6, 4.5))
    ax.scatter(points[~on_front, 0], points[~on_front, 1], s=18, color="tab:gray", alpha=0.6, label="dominated")
    front = points[on_front][np.argsort(points[on_front, 0])]
    ax.plot(front[:, 0], front[:, 1], "o-", color="tab:red", markersize=5, label="Pareto front")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return png(fig)
