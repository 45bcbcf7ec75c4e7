"""The Pareto front of a study of several objectives: which trials no other trial beats on every objective.

A study of several objectives has no single best trial; it ends with its non-dominated trials, which
``run_study`` returns as ``StudyResult.pareto`` and puts on the parent run (``pareto.csv``, ``pareto.png`` and
the tag ``pareto_run_ids``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from hpo_tune.trial import Direction, Trial, TrialState


def pareto_front(trials: Sequence[Trial], directions: Sequence[Direction]) -> list[Trial]:
    """The complete trials that no other complete trial dominates (no worse on every objective, better on one),
    in the order given; trials with equal values are all kept."""
    complete = [t for t in trials if t.state is TrialState.COMPLETE and len(t.values) == len(directions)]
    if not complete:
        return []
    losses = np.array([[d.loss(v) for d, v in zip(directions, t.values)] for t in complete])
    no_worse = (losses[None, :, :] <= losses[:, None, :]).all(axis=2)  # [i, j]: j no worse than i on every one
    better = (losses[None, :, :] < losses[:, None, :]).any(axis=2)  # [i, j]: j better than i on some
    dominated = (no_worse & better).any(axis=1)
    return [trial for trial, beaten in zip(complete, dominated) if not beaten]


def pareto_csv(front: Sequence[Trial], metrics: Sequence[str]) -> str:
    """One row per trial of the front, by its first objective: number, run, objective values, parameters."""
    params = list(dict.fromkeys(name for trial in front for name in trial.params))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", "run_id", *metrics, *params])
    for trial in sorted(front, key=lambda t: (t.values[0], t.number)):
        writer.writerow([trial.number, trial.run_id, *trial.values, *(trial.params.get(name, "") for name in params)])
    return text.getvalue()


def pareto_files(trials: Sequence[Trial], front: Sequence[Trial], metrics: Sequence[str]) -> dict[str, str | bytes]:
    """What the parent run shows of the front: the table and a plot of the first two objectives."""
    from hpo_tune.plots import pareto_scatter

    complete = [t for t in trials if t.state is TrialState.COMPLETE and len(t.values) == len(metrics)]
    on_front = {t.number for t in front}
    return {"pareto.csv": pareto_csv(front, metrics),
            "pareto.png": pareto_scatter(np.array([t.values[:2] for t in complete]),
                                         np.array([t.number in on_front for t in complete], dtype=bool), metrics[:2],
                                         f"Pareto front: {len(front)} of {len(complete)} complete trials")}
