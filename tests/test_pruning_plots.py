"""The multi-fidelity plots: per-rung cuts by the pruner's own rule, the CSV against the trials' rungs, and
every figure rendering for ASHA and Hyperband in both modes, hand-built odd histories and two studies."""

from __future__ import annotations

import csv
import io
import math

import pytest

from hpo_tune.pruning import Pruner
from hpo_tune.pruning.halving import Halving
from hpo_tune.pruning.plots import Cut, cuts, epochs_to_best, fate, halving_artifacts, rung_values
from hpo_tune.space import SearchSpace
from hpo_tune.storage.memory import run_in_memory
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Trial, TrialState

SPACE = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}})
ASHA = Halving(1, 9, 3)  # rungs at 1 and 3


def objective(params, trial):
    saved = trial.restore()
    start = 1 if saved is None else saved.epoch + 1
    for epoch in range(start, 28):
        value = (1 - (params["x"] - 0.3) ** 2) * (1 - math.exp(-epoch / (2 + 6 * params["x"])))
        trial.report(epoch, {"value": value}, checkpoint=lambda epoch=epoch: {"epoch": epoch})
    return {"value": value}


@pytest.fixture(scope="module")
def studies() -> dict[tuple[str, str], list[Trial]]:
    """Real in-memory studies, 30 trials of up to 27 epochs: each pruner in each mode, and one without."""
    out = {}
    for name, mode in [("asha", "stop"), ("asha", "promote"), ("hyperband", "stop"), ("hyperband", "promote"),
                       ("none", "stop")]:
        pruner = Pruner(name=name, max_resource=27, mode=mode) if name != "none" else Pruner()
        strategy = make_strategy("random", SPACE, 0, Direction.MAXIMIZE, None, n_trials=30)
        out[name, mode] = run_in_memory(strategy, objective, 30, pruner=pruner, metric="value")
    return out


def is_png(data: bytes | str) -> bool:
    return isinstance(data, bytes) and data.startswith(b"\x89PNG") and len(data) > 5000


def trial(number: int, state: TrialState, rungs: dict, curve: dict | None = None, value: float | None = None,
          paused: bool = False) -> Trial:
    return Trial(number, {"x": 0.5}, state, value, curve=curve if curve is not None else
                 {e: 0.0 for e in range(1, max(rungs, default=0) + 1)}, rungs=rungs, paused=paused)


def test_the_cut_at_a_rung_is_the_worst_value_the_pruner_keeps():
    recorded = {0: 0.1, 1: 0.5, 2: 0.3, 3: 0.9, 4: 0.2, 5: math.nan}  # 6 values: the best 2 go on
    assert cuts({1: recorded}, ASHA, Direction.MAXIMIZE) == {1: Cut(0.5, 2, 6)}
    assert cuts({1: recorded}, ASHA, Direction.MINIMIZE) == {1: Cut(0.2, 2, 6)}  # a NaN ranks last either way
    assert cuts({3: {0: 0.4}}, ASHA, Direction.MAXIMIZE) == {3: Cut(0.4, 1, 1)}  # stop mode: the first goes on
    promote = Halving(1, 9, 3, mode="promote")
    assert cuts({3: {0: 0.4, 1: 0.6}}, promote, Direction.MAXIMIZE) == {3: Cut(None, 0, 2)}  # fewer than eta
    assert cuts({1: {0: math.nan}}, ASHA, Direction.MAXIMIZE) == {1: Cut(None, 1, 1)}  # kept, but no line to draw


def test_rung_values_group_by_bracket_and_a_trial_s_fate_at_each_rung():
    history = [trial(0, TrialState.COMPLETE, {1: 0.3, 3: 0.5}, value=0.7),
               trial(1, TrialState.PRUNED, {1: 0.1}),
               trial(2, TrialState.PRUNED, {1: 0.4, 3: 0.2}, paused=True),
               trial(3, TrialState.RUNNING, {1: 0.2}, curve={1: 0.2, 2: 0.25}),
               trial(4, TrialState.FAILED, {1: 0.0})]
    assert rung_values(history, ASHA, 0) == {ASHA.s_max: {1: {0: 0.3, 1: 0.1, 2: 0.4, 3: 0.2, 4: 0.0},
                                                          3: {0: 0.5, 2: 0.2}}}
    assert [fate(t, 1) for t in history] == ["completed", "pruned here", "went on", "went on", "failed"]
    assert fate(history[2], 3) == "paused here"
    assert fate(trial(5, TrialState.RUNNING, {1: 0.2}), 1) == "running"
    hyperband = Halving(1, 27, 3, hyperband=True)
    table = rung_values([], hyperband, 0)
    assert {b: list(rungs) for b, rungs in table.items()} == {1: [9], 2: [3, 9], 3: [1, 3, 9]}  # bracket 0: none


def test_no_figures_until_a_trial_records_a_rung():
    assert halving_artifacts([], ASHA, 0, Direction.MAXIMIZE, "acc") == {}
    unpruned = [trial(0, TrialState.COMPLETE, {}, curve={1: 0.5, 2: 0.6}, value=0.6), trial(1, TrialState.FAILED, {})]
    assert halving_artifacts(unpruned, ASHA, 0, Direction.MAXIMIZE, "acc") == {}


@pytest.mark.parametrize("direction", [Direction.MINIMIZE, Direction.MAXIMIZE])
def test_odd_hand_built_histories_render(direction):
    """Failed, running, paused, curve-less trials, NaN and infinite values: every figure still renders."""
    history = [trial(0, TrialState.COMPLETE, {1: 0.3, 3: math.nan}, curve={1: 0.3, 2: math.inf, 3: math.nan,
                                                                            9: 0.4}, value=math.nan),
               trial(1, TrialState.PRUNED, {1: 0.1}, curve={}),
               trial(2, TrialState.PRUNED, {1: 0.4, 3: 0.2}, paused=True),
               trial(3, TrialState.RUNNING, {1: 0.2}, curve={1: 0.2, 2: 0.25}),
               trial(4, TrialState.FAILED, {1: math.nan}),
               trial(5, TrialState.COMPLETE, {1: 0.5, 3: 0.6}, value=0.8),
               trial(6, TrialState.FAILED, {})]
    artifacts = halving_artifacts(history, ASHA, 0, direction, "loss")
    assert set(artifacts) == {"rungs.png", "curves.png", "epochs_to_best.png", "rungs.csv"}
    assert all(is_png(artifacts[name]) for name in ("rungs.png", "curves.png", "epochs_to_best.png"))
    rows = list(csv.DictReader(io.StringIO(artifacts["rungs.csv"])))
    assert [row["stopped_at"] for row in rows] == ["9", "1", "3", "2", "1", "3", ""]
    assert rows[0]["rung.3"] == "nan" and rows[0]["value"] == "nan" and rows[6]["rung.1"] == ""


@pytest.mark.parametrize("name,mode", [("asha", "stop"), ("asha", "promote"), ("hyperband", "stop"),
                                       ("hyperband", "promote")])
def test_a_real_study_s_figures_and_csv(studies, name, mode):
    trials = studies[name, mode]
    halving = Pruner(name=name, max_resource=27, mode=mode).halving
    assert any(t.state is TrialState.PRUNED for t in trials)  # the pruner did cut
    artifacts = halving_artifacts(trials, halving, 0, Direction.MAXIMIZE, "value")
    assert all(is_png(artifacts[name]) for name in ("rungs.png", "curves.png", "epochs_to_best.png"))

    rows = list(csv.DictReader(io.StringIO(artifacts["rungs.csv"])))
    epochs = sorted({e for t in trials for e in t.rungs})
    assert epochs == [1, 3, 9]
    assert list(rows[0]) == ["number", "bracket", "state", "paused", "stopped_at", "rung.1", "rung.3", "rung.9",
                             "value"]
    assert [int(row["number"]) for row in rows] == sorted(t.number for t in trials)
    for row, t in zip(rows, sorted(trials, key=lambda t: t.number)):
        assert int(row["bracket"]) == halving.bracket(t.number, 0)
        assert (row["state"], row["paused"], int(row["stopped_at"])) == (t.state.value, str(t.paused), max(t.curve))
        assert {e: float(row[f"rung.{e}"]) for e in epochs if row[f"rung.{e}"]} == t.rungs
        assert set(t.rungs) <= set(halving.rungs_of(t.number, 0))
        assert (float(row["value"]) if row["value"] else None) == t.value
    if name == "hyperband":
        assert len({row["bracket"] for row in rows}) > 1


def test_epochs_to_best_puts_two_studies_side_by_side(studies):
    pruned, whole = studies["asha", "stop"], studies["none", "stop"]
    assert sum(len(t.curve) for t in pruned) < sum(len(t.curve) for t in whole) == 30 * 27
    for direction in Direction:
        assert is_png(epochs_to_best({"asha": pruned, "no pruning": whole}, direction, "value"))
    assert is_png(epochs_to_best({"empty": [], "failed": [trial(0, TrialState.FAILED, {})]}, Direction.MINIMIZE,
                                 "loss"))
    assert is_png(epochs_to_best({}, Direction.MAXIMIZE, "value"))
