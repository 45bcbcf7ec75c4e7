"""t_sampling's artifacts: per stage the table of the paper's Tables 2-3 and a heatmap; a summary at the end.

Functions of a ``TSamplingSnapshot`` alone, never of the strategy: the driver renders them beside ``propose``
(see ``snapshot``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hpo_tune.plots import png, pyplot
from hpo_tune.strategies.t_sampling.snapshot import Judged, TSamplingSnapshot
from hpo_tune.strategies.t_sampling.stages import Combination, Stage
from hpo_tune.trial import Direction


def artifacts(snapshot: TSamplingSnapshot) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {}
    for judged in snapshot.stages if snapshot.complete else snapshot.stages[:-1]:
        number = judged.stage.number
        table = stage_table(snapshot, judged)
        files[f"t_sampling/stage{number}.csv"] = table.to_csv(index=False)
        files[f"t_sampling/stage{number}.png"] = heatmap(snapshot, judged.stage, table)
    if snapshot.winner is not None and snapshot.order is not None:
        files["t_sampling/summary.md"] = summary(snapshot)
    return files


def stage_table(snapshot: TSamplingSnapshot, judged: Judged) -> pd.DataFrame:
    """One row per combination: n, mean, sd, P(< criterion) and the decision; ``dropped (budget)`` marks a
    survivor the budget could not carry into the next stage."""
    stage = judged.stage
    last = stage.number == len(snapshot.order) - 1
    chosen = {min(stage.combinations, key=lambda c: c.mean).key} if last else set(judged.survivors)
    sign = 1.0 if snapshot.direction is Direction.MINIMIZE else -1.0

    def decision(c: Combination, p: float) -> str:
        if last:
            return "winner" if c.key in chosen else "-"
        if c.key in chosen:
            return "kept"
        return "dropped (budget)" if p >= snapshot.alpha else "dropped"

    return pd.DataFrame([{**c.fixed, "n": len(c.losses), "mean": sign * c.mean, "sd": c.sd, "probability": p,
                          "decision": decision(c, p)} for c, p in zip(stage.combinations, judged.probabilities)])


def heatmap(snapshot: TSamplingSnapshot, stage: Stage, table: pd.DataFrame) -> bytes:
    plt = pyplot()
    column = stage.names[-1]
    rows = [name for name in stage.names if name != column]
    table = table.assign(row=table[rows].astype(str).agg(", ".join, axis=1))
    means = table.pivot(index="row", columns=column, values="mean")
    probs = table.pivot(index="row", columns=column, values="probability")
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * means.shape[1], 1.2 + 0.5 * means.shape[0]))
    image = ax.imshow(means.to_numpy(dtype=float), cmap="viridis_r" if snapshot.direction is Direction.MINIMIZE
                      else "viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(means.to_numpy(dtype=float)):
        ax.text(j, i, f"{value:.4g}\np={probs.iat[i, j]:.3f}", ha="center", va="center", fontsize=7,
                color="white" if probs.iat[i, j] < snapshot.alpha else "black")
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns])
    ax.set_yticks(range(means.shape[0]), list(means.index))
    ax.set_xlabel(column)
    ax.set_ylabel(", ".join(rows))
    ax.set_title(f"stage {stage.number}: mean objective, P(< criterion); white = dropped", fontsize=8)
    fig.colorbar(image, ax=ax)
    return png(fig, dpi=110)


def summary(snapshot: TSamplingSnapshot) -> str:
    order, best = snapshot.order, snapshot.winner
    sign = 1.0 if snapshot.direction is Direction.MINIMIZE else -1.0
    lines = [f"# t_sampling: order {', '.join(order)}", "",
             "| stage | combinations | kept | trainings |", "| --- | --- | --- | --- |"]
    for judged in snapshot.stages:
        stage = judged.stage
        kept = len(judged.survivors) if stage.number < len(order) - 1 else "-"
        lines.append(f"| {stage.number} | {len(stage.combinations)} | {kept} | "
                     f"{sum(c.scheduled for c in stage.combinations)} |")
    lines += ["", f"Winner: {best.key} (mean objective {sign * best.mean:.6g} over {len(best.losses)} samples); "
              f"{snapshot.trainings} trainings in all."]
    return "\n".join(lines) + "\n"
