"""The figures a multi-fidelity study logs on its parent run: what each rung kept, the curves it cut, the
epochs it saved.

A halving pruner's decisions are spread over many trial runs (``rung.<epoch>`` tags); these put them on one
page so a reader can see whether the rungs cut at sensible values and what the study gained in epochs.
Drawn on bare figures (``hpo_tune.plots.subplots``), off pyplot, since the driver draws them in a background thread.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from hpo_tune.plots import png, subplots
from hpo_tune.pruning.halving import Halving
from hpo_tune.trial import Direction, Trial, TrialState

FATES = {"went on": "tab:blue", "completed": "tab:green", "pruned here": "tab:red", "paused here": "tab:orange",
         "running": "tab:cyan", "failed": "tab:gray"}


class Cut(NamedTuple):
    """A rung's cut as the study ends: the worst value kept (None when none is), of ``recorded`` values."""

    value: float | None
    kept: int
    recorded: int


def stopped_at(trial: Trial) -> int | None:
    """The last epoch a trial reported (its last rung when it has no curve)."""
    return max(trial.curve) if trial.curve else max(trial.rungs, default=None)


def rung_values(history: list[Trial], halving: Halving, seed: int) -> dict[int, dict[int, dict[int, float]]]:
    """bracket -> rung epoch -> trial number -> value recorded there: what the pruner compared (brackets with
    rungs only: Hyperband's bracket 0 trains every trial fully)."""
    brackets = range(halving.brackets) if halving.hyperband else [halving.s_max]
    table: dict[int, dict[int, dict[int, float]]] = {b: {e: {} for e in halving.rungs(b)} for b in brackets
                                                     if halving.rungs(b)}
    for trial in history:
        for epoch, value in trial.rungs.items():
            table.setdefault(halving.bracket(trial.number, seed), {}).setdefault(epoch, {})[trial.number] = value
    return table


def _epochs(history: list[Trial], halving: Halving, seed: int) -> list[int]:
    return sorted({e for values in rung_values(history, halving, seed).values() for e in values})


def cuts(values: Mapping[int, Mapping[int, float]], halving: Halving, direction: Direction) -> dict[int, Cut]:
    """Each rung's cut, by the pruner's own rule (``Halving.best``), from every value recorded there; the value
    is None when nothing is kept (promote mode, fewer than eta values) or the worst kept is not finite."""
    out = {}
    for epoch, recorded in values.items():
        kept = halving.best(recorded, direction, promote=halving.mode == "promote")
        worst = recorded[kept[-1]] if kept else math.nan
        out[epoch] = Cut(worst if math.isfinite(worst) else None, len(kept), len(recorded))
    return out


def _blank(value: object) -> object:
    return "" if value is None else value


def _better(direction: Direction) -> str:
    return f"{'higher' if direction is Direction.MAXIMIZE else 'lower'} is better"


def fate(trial: Trial, epoch: int) -> str:
    """What became of a trial that recorded a value at rung ``epoch``."""
    if trial.state is TrialState.COMPLETE:
        return "completed"
    if (stopped_at(trial) or 0) > epoch:
        return "went on"
    if trial.paused:
        return "paused here"
    return {TrialState.RUNNING: "running", TrialState.FAILED: "failed"}.get(trial.state, "pruned here")


def halving_artifacts(history: list[Trial], halving: Halving, seed: int, direction: Direction,
                      metric: str) -> dict[str, bytes | str]:
    """rungs.png, curves.png, epochs_to_best.png and rungs.csv; ``{}`` until a trial has recorded a rung."""
    if not any(t.rungs for t in history):
        return {}
    name = f"{'hyperband' if halving.hyperband else 'asha'} ({halving.mode})"
    return {"rungs.png": _rungs_png(history, halving, seed, direction, metric),
            "curves.png": _curves_png(history, halving, seed, metric),
            "epochs_to_best.png": epochs_to_best({name: history}, direction, metric),
            "rungs.csv": _rungs_csv(history, halving, seed)}


def _rungs_png(history: list[Trial], halving: Halving, seed: int, direction: Direction, metric: str) -> bytes:
    """Per bracket and rung, every value recorded there (coloured by its trial's fate) and the cut."""
    from matplotlib.lines import Line2D

    table, trials, rng = rung_values(history, halving, seed), {t.number: t for t in history}, np.random.default_rng(0)
    fig, axes = subplots(1, len(table), figsize=(1.2 + 3.6 * len(table), 4), sharey=True, squeeze=False)
    shown: set[str] = set()
    for ax, (bracket, values) in zip(axes[0], sorted(table.items(), reverse=True)):
        for epoch, cut in cuts(values, halving, direction).items():
            points = [(fate(trials[n], epoch), v) for n, v in values[epoch].items() if math.isfinite(v)]
            for label in FATES:
                y = [v for f, v in points if f == label]
                if y:
                    ax.scatter(epoch * np.exp(rng.uniform(-0.12, 0.12, len(y))), y, s=14, color=FATES[label], alpha=0.8)
                    shown.add(label)
            if cut.value is not None:
                ax.hlines(cut.value, epoch / 1.35, epoch * 1.35, color="black", linewidth=1.5)
                ax.annotate(f"keeps top 1/{halving.eta} of {cut.recorded}", (epoch, cut.value), xytext=(0, 4),
                            textcoords="offset points", ha="center", fontsize=6.5,
                            bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5})
            else:
                ax.text(epoch, 0.02, f"{cut.recorded} recorded,\n{cut.kept} kept", transform=ax.get_xaxis_transform(),
                        ha="center", fontsize=6.5)
        ax.set_xscale("log")
        ax.set_xticks(sorted(values), [str(e) for e in sorted(values)])
        ax.minorticks_off()
        ax.set_xlim(min(values) / 2, max(values) * 2)
        ax.set_xlabel("rung (epoch)")
        ax.set_title(f"bracket {bracket}" if halving.hyperband else "ASHA", fontsize=9)
    axes[0][0].set_ylabel(f"{metric} at the rung ({_better(direction)})")
    axes[0][-1].legend(handles=[Line2D([], [], marker="o", linestyle="", color=FATES[f], label=f)
                                for f in FATES if f in shown], fontsize=7, loc="best")
    fig.suptitle(f"values at each rung; the cut (—) is the worst value kept ({halving.mode} mode, eta={halving.eta})",
                 fontsize=10)
    return png(fig)


def _curves_png(history: list[Trial], halving: Halving, seed: int, metric: str) -> bytes:
    """Every curve, coloured by the epoch it stopped at: what the rungs cut and how early."""
    from matplotlib import colormaps

    epochs = _epochs(history, halving, seed)
    stops = sorted({stopped_at(t) or 0 for t in history if t.state is TrialState.PRUNED} | set(epochs))
    palette = colormaps["plasma"](np.linspace(0, 0.85, len(stops)))  # discrete: one colour per epoch
    styles = {f"{how} at {e}": (c, "--" if how == "paused" else "-") for e, c in zip(stops, palette)
              for how in ("stopped", "paused")}
    styles |= {"completed": ("tab:green", "-"), "running": ("tab:cyan", "-"), "failed": ("darkgray", "-")}
    fig, ax = subplots(figsize=(7, 4.5))
    counts: dict[str, int] = {}
    for t in sorted(history, key=lambda t: t.number):
        key = {TrialState.COMPLETE: "completed", TrialState.PRUNED: f"{'paused' if t.paused else 'stopped'} at "
               f"{stopped_at(t)}"}.get(t.state, t.state.value)
        x = np.array(sorted(t.curve), float)
        y = np.array([t.curve[e] for e in sorted(t.curve)], float)
        y[~np.isfinite(y)] = np.nan
        colour, style = styles.get(key, ("black", "-"))
        ax.plot(x, y, color=colour, linestyle=style, linewidth=0.9, alpha=0.75, marker="o", markersize=2.5,
                markevery=[len(x) - 1] if len(x) else None, zorder=1 if key == "completed" else 2)
        counts[key] = counts.get(key, 0) + 1
    for epoch in epochs:
        ax.axvline(epoch, color="gray", linestyle=":", linewidth=0.8)
    if all(e > 0 for t in history for e in t.curve):
        ax.set_xscale("log")
        ticks = sorted({*epochs, halving.max_resource})
        ax.set_xticks(ticks, [str(e) for e in ticks])
        ax.minorticks_off()
    for key in (k for k in styles if k in counts):  # the legend in the styles' order, with counts
        ax.plot([], [], color=styles[key][0], linestyle=styles[key][1], label=f"{key}: {counts[key]}")
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("epoch (dotted: rungs)")
    ax.set_ylabel(metric)
    ax.set_title(f"learning curves by the epoch each stopped at ({len(history)} trials)", fontsize=10)
    return png(fig)


def _rungs_csv(history: list[Trial], halving: Halving, seed: int) -> str:
    """One row per trial: its bracket, fate and rung values, for a reader to sort and filter."""
    epochs = _epochs(history, halving, seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "bracket", "state", "paused", "stopped_at", *(f"rung.{e}" for e in epochs), "value"])
    for t in sorted(history, key=lambda t: t.number):
        writer.writerow([t.number, halving.bracket(t.number, seed), t.state.value, t.paused, _blank(stopped_at(t)),
                         *(t.rungs.get(e, "") for e in epochs), _blank(t.value)])
    return buffer.getvalue()


def epochs_to_best(studies: Mapping[str, list[Trial]], direction: Direction, metric: str) -> bytes:
    """Best final value so far against cumulative epochs trained (trials in number order), one step line per
    study: what a pruner buys is the same best for fewer epochs."""
    fig, ax = subplots(figsize=(6.5, 4))
    for name, trials in studies.items():
        spent, best, xs, ys = 0, math.nan, [0], [math.nan]
        for t in sorted(trials, key=lambda t: t.number):
            spent += len(t.curve)
            if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value) and \
                    (math.isnan(best) or direction.better(t.value, best)):
                best = t.value
            xs.append(spent)
            ys.append(best)
        line, = ax.step(xs, ys, where="post", label=f"{name}: {len(trials)} trials, {spent} epochs, best {best:.4g}")
        ax.plot(xs[-1:], ys[-1:], "o", color=line.get_color(), markersize=4)
    ax.set_xlabel("epochs trained, all trials (cumulative)")
    ax.set_ylabel(f"best {metric} so far ({_better(direction)})")
    ax.set_title("best complete trial against epochs spent", fontsize=10)
    if studies:
        ax.legend(fontsize=7, loc="best")
    return png(fig)
