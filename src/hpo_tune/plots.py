"""Plot helpers: figures are drawn off-screen and handed around as PNG bytes (MLflow artifacts)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


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
