"""The BOs' surrogate plots: the surrogate and EI over a one-dimensional space, or slices through the best trial.

A numeric dimension shows the surrogate's mean and 95% band of the function as a curve; a choice shows them at
each level as a point with error bars (and EI as bars), since nothing lies between its levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hpo_tune.plots import png, pyplot
from hpo_tune.space import Choice, Dimension
from hpo_tune.strategies.bayes.encoding import INACTIVE, Encoding, from_unit, is_log
from hpo_tune.strategies.bayes.surrogate import Model, Predictive

SLICE_POINTS = 400  # points along a numeric dimension


def surrogate_png(title: str, encoding: Encoding, model: Model, predictive: Callable[[np.ndarray], Predictive],
                  inputs: np.ndarray, losses: np.ndarray, sign: float) -> bytes:
    """The surrogate as it stands: with EI below for a one-dimensional space, else one panel per dimension along
    which it is cut through the best trial (the other dimensions held at its values). ``sign`` turns losses back
    into the objective (-1 for a maximised one)."""
    if len(encoding.space) == 1:
        return _one_dimension(title, encoding, model, predictive, inputs, losses, sign)
    return _slices(title, encoding, model, predictive, inputs, losses, sign)


def _one_dimension(title: str, encoding: Encoding, model: Model, predictive: Callable[[np.ndarray], Predictive],
                   inputs: np.ndarray, losses: np.ndarray, sign: float) -> bytes:
    plt = pyplot()
    ((name, dim),) = encoding.space.items()
    rows, x = _sweep(encoding, name, np.zeros(encoding.width))
    along = predictive(rows)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5), height_ratios=[2, 1])
    _surrogate(top, dim, x, along, model, sign)
    top.scatter(_positions(encoding, name, inputs), sign * losses, color="black", zorder=3, label="trials")
    top.set_ylabel("objective")
    top.legend(fontsize=8)
    ei = model.sd * model.ei(along)
    if isinstance(dim, Choice):
        bottom.bar(x, ei, color="tab:red", width=0.5)
    else:
        bottom.plot(x, ei, color="tab:red")
    bottom.set_ylabel("expected improvement")
    _axis(bottom, name, dim)
    top.set_title(f"{title}: {len(losses)} complete trials")
    return png(fig)


def _slices(title: str, encoding: Encoding, model: Model, predictive: Callable[[np.ndarray], Predictive],
            inputs: np.ndarray, losses: np.ndarray, sign: float) -> bytes:
    plt = pyplot()
    space = encoding.space
    best = int(np.argmin(losses))
    best_params = encoding.decode(inputs[best])
    columns = min(3, len(space))
    rows = math.ceil(len(space) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.6 * rows), squeeze=False)
    objective = sign * losses
    for j, (ax, (name, dim)) in enumerate(zip(axes.flat, space.items())):
        points, x = _sweep(encoding, name, inputs[best])
        _surrogate(ax, dim, x, predictive(points), model, sign)
        positions = _positions(encoding, name, inputs)
        ax.scatter(positions, objective, s=14, color="gray", alpha=0.6, zorder=3,
                   label="trials (other dimensions vary)")
        ax.scatter([positions[best]], [objective[best]], marker="*", s=140, color="tab:red", zorder=4,
                   label="best trial")
        ax.axvline(positions[best], color="tab:red", linestyle=":", linewidth=0.8)
        value = best_params.get(name, "inactive")
        ax.set_title(f"{name} (best trial: {f'{value:.4g}' if isinstance(value, float) else value})", fontsize=9)
        _axis(ax, name, dim)
        if j % columns == 0:
            ax.set_ylabel("objective")
    for ax in list(axes.flat)[len(space):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title}: surrogate through the best trial, one dimension at a time, the others held "
                 f"at its values ({len(losses)} complete trials)", fontsize=10)
    return png(fig)


def _sweep(encoding: Encoding, name: str, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along dimension ``name`` with the others at ``point``, and where they go on the x axis (a numeric
    dimension's values, unrounded; a choice's level numbers)."""
    dim = encoding.space[name]
    if isinstance(dim, Choice):
        values = encoding.level_rows(name)
        x = np.arange(len(values))
    else:
        units = np.linspace(0.0, 1.0, SLICE_POINTS)
        values, x = units[:, None], from_unit(dim, units)
    points = np.tile(point, (len(values), 1))
    points[:, encoding.blocks[name]] = values
    return points, x


def _positions(encoding: Encoding, name: str, inputs: np.ndarray) -> np.ndarray:
    """Where encoded trials go on dimension ``name``'s x axis (as in ``_sweep``); NaN, so not drawn, where it was
    inactive."""
    dim, block = encoding.space[name], encoding.blocks[name]
    at = encoding.levels_at(name, inputs) if isinstance(dim, Choice) else from_unit(dim, inputs[:, block.start])
    return np.where(inputs[:, block.start] == INACTIVE, np.nan, at)


def _surrogate(ax: Any, dim: Dimension, x: np.ndarray, predictive: Predictive, model: Model, sign: float) -> None:
    """The surrogate's mean and 95% interval of the function along ``dim``: a band, or error bars at a choice's
    levels."""
    mean = model.objective(predictive.loc, sign)
    low, high = np.sort(model.objective(np.array(predictive.interval(0.95)), sign), axis=0)
    if isinstance(dim, Choice):
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="o", capsize=4,
                    label="surrogate mean, 95% interval of the function")
    else:
        ax.fill_between(x, low, high, alpha=0.25, label="95% band of the function")
        ax.plot(x, mean, label="surrogate mean")


def _axis(ax: Any, name: str, dim: Dimension) -> None:
    """Label the x axis with the parameter's name; a choice ticked at its values; log dimensions on a log scale
    with plain numbers, ticked at the powers of ten, and at 2 and 5 x 10^k too when the range spans less than
    two decades (one decade alone would leave the axis with one label or with crowded minor ones)."""
    from matplotlib import ticker

    ax.set_xlabel(name)
    if isinstance(dim, Choice):
        ax.set_xticks(range(len(dim.values)), [str(v) for v in dim.values])
    elif is_log(dim):
        ax.set_xscale("log")
        narrow = math.log10(dim.high / dim.low) < 2
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
