"""ASHA and Hyperband: rungs, brackets, decisions, and studies that stop, pause and resume trials."""

from __future__ import annotations

import math
import threading
from collections import Counter

import pytest

from hpo_tune.errors import ConfigError
from hpo_tune.pruning import Pruner
from hpo_tune.pruning.halving import Halving
from hpo_tune.space import SearchSpace
from hpo_tune.storage.memory import InMemoryStore, run_in_memory
from hpo_tune.storage.memory_runs import MemoryStudy
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Trial, TrialState

SPACE = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}})
EPOCHS = 27


def curve(x: float, epoch: int) -> float:
    """Accuracy-like: best at x = 0.3; a higher x learns a little slower, so early and final ranks differ."""
    return (1 - (x - 0.3) ** 2) * (1 - math.exp(-epoch / (3 + 2 * x)))


class Curves:
    """An objective that trains ``EPOCHS`` epochs of ``curve``, checkpointing, and logs where each call started."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, int]] = []  # (trial number, first epoch trained)
        self.reported = 0
        self.lock = threading.Lock()

    def __call__(self, params, trial):
        saved = trial.restore()
        start = 1 if saved is None else saved.state["epoch"] + 1
        assert saved is None or saved.epoch == saved.state["epoch"]
        with self.lock:
            self.starts.append((trial.number, start))
        for epoch in range(start, EPOCHS + 1):
            with self.lock:
                self.reported += 1
            trial.report(epoch, {"value": curve(params["x"], epoch)}, checkpoint=lambda epoch=epoch: {"epoch": epoch})
        return {"value": curve(params["x"], EPOCHS)}


def study(pruner: Pruner, n_trials: int = 30, seed: int = 0, **options) -> tuple[list[Trial], Curves]:
    objective = Curves()
    strategy = make_strategy("random", SPACE, seed, Direction.MAXIMIZE, None, n_trials=n_trials)
    return run_in_memory(strategy, objective, n_trials, pruner=pruner, metric="value", seed=seed, **options), objective


def test_rungs_and_brackets_follow_the_papers():
    asha = Halving(1, 27, 3)
    assert asha.s_max == 3 and asha.brackets == 1 and asha.rungs_of(5, 0) == [1, 3, 9]
    assert Halving(2, 40, 3).rungs(Halving(2, 40, 3).s_max) == [2, 6, 18]
    band = Halving(1, 27, 3, hyperband=True)
    assert [band.rungs(s) for s in range(4)] == [[], [9], [3, 9], [1, 3, 9]]
    iteration = [band.bracket(n, seed=7) for n in range(4 + 6 + 12 + 27)]  # ceil(4 / (s + 1) * 3**s) per bracket
    assert Counter(iteration) == {0: 4, 1: 6, 2: 12, 3: 27}
    again = Halving(1, 27, 3, hyperband=True)  # another process: same brackets, and the next iteration repeats
    assert [again.bracket(n, seed=7) for n in range(49, 98)] == iteration
    assert [band.bracket(n, seed=8) for n in range(49)] != iteration


def test_a_rung_keeps_the_best_third_and_the_first_to_arrive():
    asha = Halving(1, 27, 3)
    assert asha.verdict(0, 1, 0.5, {}, Direction.MAXIMIZE) is None  # nothing to compare with: it goes on
    assert asha.verdict(1, 1, 0.4, {0: 0.5}, Direction.MAXIMIZE) is not None
    six = {n: v for n, v in enumerate([0.9, 0.8, 0.7, 0.6, 0.5])}
    assert asha.verdict(5, 1, 0.85, six, Direction.MAXIMIZE) is None  # 2nd of 6: the best 2 go on
    assert "the cut is 0.8" in asha.verdict(5, 1, 0.75, six, Direction.MAXIMIZE)
    assert asha.verdict(5, 1, 0.15, {n: -v for n, v in six.items()}, Direction.MINIMIZE) is not None
    assert asha.verdict(5, 1, math.nan, six, Direction.MAXIMIZE) is not None
    assert asha.best({0: math.nan, 1: 0.1, 2: 0.2}, Direction.MAXIMIZE, promote=False) == [2]


def test_promotions_go_to_the_best_third_of_a_rung_highest_rungs_first():
    asha = Halving(1, 27, 3, mode="promote")

    def paused(number: int, rungs: dict[int, float]) -> Trial:
        return Trial(number, {"x": 0.0}, TrialState.PRUNED, rungs=rungs, paused=True)

    history = [paused(0, {1: 0.9}), paused(1, {1: 0.1}), paused(2, {1: 0.2}), paused(3, {1: 0.3, 3: 0.5})]
    recorded = {1: {0: 0.9, 1: 0.1, 2: 0.2, 3: 0.3, 4: 0.95, 5: 0.05}, 3: {3: 0.5}}
    chosen = asha.promotions(history, recorded, 0, Direction.MAXIMIZE)
    assert [(t.number, epoch) for t, epoch in chosen] == [(0, 1)]  # 6 values: the best 2 are 4 (running) and 0
    drained = asha.promotions(history, recorded, 0, Direction.MAXIMIZE, draining=True)
    assert [(t.number, epoch) for t, epoch in drained] == [(3, 3), (0, 1)]  # the lone trial at rung 3 goes on


@pytest.mark.parametrize("options, key", [
    ({"name": "asha"}, "pruner.max_resource"),
    ({"name": "asha", "max_resource": 1}, "pruner.max_resource"),
    ({"name": "hyperband", "max_resource": 9, "reduction_factor": 1}, "pruner.reduction_factor"),
    ({"name": "asha", "max_resource": 9, "min_resource": 0}, "pruner.min_resource"),
    ({"name": "asha", "max_resource": 9, "mode": "pause"}, "pruner.mode"),
    ({"name": "asha", "max_resource": 9.5}, "pruner.max_resource"),
])
def test_bad_options_name_their_key(options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Pruner(**options)


@pytest.mark.parametrize("name", ["asha", "hyperband"])
@pytest.mark.parametrize("mode", ["stop", "promote"])
def test_a_study_spends_a_fraction_of_the_epochs_and_keeps_the_best(name, mode):
    full, everything = study(Pruner())
    trials, objective = study(Pruner(name=name, max_resource=EPOCHS, mode=mode))
    spent = sum(len(t.curve) for t in trials)
    assert spent == objective.reported  # a promoted trial trains on from its checkpoint: no epoch twice
    assert spent < (0.5 if name == "asha" else 0.7) * EPOCHS * len(full)
    best = max(full, key=lambda t: t.value)
    found = max((t for t in trials if t.state is TrialState.COMPLETE), key=lambda t: t.value)
    assert found.value >= best.value - 0.05  # values span about 0.5-1.0 here
    assert {t.number for t in trials} == set(range(30))
    for trial in trials:
        if trial.state is TrialState.PRUNED:
            assert trial.paused == (mode == "promote")
            assert max(trial.curve) == max(trial.rungs)  # it stopped (or waits) at its last rung
        rungs = Pruner(name=name, max_resource=EPOCHS).halving.rungs_of(trial.number, 0)
        assert set(trial.rungs) == {r for r in rungs if r <= max(trial.curve)}


def test_promoted_trials_resume_from_their_checkpoints_once_each():
    trials, objective = study(Pruner(name="asha", max_resource=EPOCHS, mode="promote"))
    resumed = [(n, start) for n, start in objective.starts if start > 1]
    assert resumed, "no trial was promoted"
    assert len(set(resumed)) == len(resumed)  # each promotion of each trial ran once
    assert all(start - 1 in (1, 3, 9) for _, start in resumed)  # right after a rung
    assert Counter(n for n, start in objective.starts if start == 1) == Counter(range(30))  # no trial restarted
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert complete and all(sorted(t.curve) == list(range(1, EPOCHS + 1)) for t in complete)  # one whole curve
    assert all(t.value == pytest.approx(t.curve[EPOCHS]) for t in complete)


def test_an_objective_without_checkpoints_repeats_its_epochs_but_records_them_once():
    starts = []

    def forgetful(params, trial):
        starts.append(trial.number)
        for epoch in range(1, EPOCHS + 1):
            trial.report(epoch, {"value": curve(params["x"], epoch)})  # no checkpoint, no restore
        return {"value": curve(params["x"], EPOCHS)}

    strategy = make_strategy("random", SPACE, 0, Direction.MAXIMIZE, None, n_trials=12)
    trials = run_in_memory(strategy, forgetful, 12, pruner=Pruner(name="asha", max_resource=EPOCHS, mode="promote"),
                           metric="value")
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert complete and len(starts) > 12
    assert all(sorted(t.curve) == list(range(1, EPOCHS + 1)) for t in complete)


def test_two_drivers_promote_each_paused_trial_once():
    shared, objective = MemoryStudy(), Curves()
    pruner = Pruner(name="asha", max_resource=EPOCHS, mode="promote")

    def drive() -> None:
        strategy = make_strategy("random", SPACE, 0, Direction.MAXIMIZE, None, n_trials=30)
        run_in_memory(strategy, objective, 30, study=shared, pruner=pruner, metric="value")

    threads = [threading.Thread(target=drive) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert Counter(objective.starts).most_common(1)[0][1] == 1  # no (trial, start epoch) ran twice
    trials = InMemoryStore(shared, Direction.MAXIMIZE).history()
    assert {t.number for t in trials} == set(range(30))
    assert any(t.state is TrialState.COMPLETE for t in trials)


def test_stop_mode_compares_with_running_trials_values():
    """A trial reaching a rung sees what other trials recorded there while they still run."""
    shared = MemoryStudy()
    store = InMemoryStore(shared, Direction.MAXIMIZE)
    pruner = Pruner(name="asha", max_resource=EPOCHS)
    for number, value in enumerate([0.9, 0.8]):
        run_id = store.start_trial(number, make_strategy("random", SPACE, 0, Direction.MAXIMIZE, None)
                                   .propose([], [number]).proposals[0], "cpu")
        store.sink.recorder(run_id, {}, "value").rung(1, value)  # both still RUNNING
    assert store.rung_values(1) == {0: 0.9, 1: 0.8}
    assert pruner.check(store, Direction.MAXIMIZE, 2, 1, 0.85) is not None  # 3 values: only the best goes on
    assert pruner.check(store, Direction.MAXIMIZE, 2, 1, 0.95) is None
    assert pruner.check(store, Direction.MAXIMIZE, 2, 2, 0.1) is None  # not a rung


def test_a_promotion_held_by_a_process_that_died_leaves_the_trial_paused_and_the_study_ends():
    shared = MemoryStudy()
    for number in range(9):  # a rival claimed every promotion, then died before reopening the runs
        for epoch in (1, 3, 9):
            shared.promotions[number, 0, epoch] = "dead"
    trials, objective = study(Pruner(name="asha", max_resource=EPOCHS, mode="promote"), n_trials=9, study=shared)
    assert sorted(objective.starts) == [(n, 1) for n in range(9)]  # each ran to rung 1, none was resumed
    assert all(t.paused and set(t.rungs) == {1} for t in trials)  # and the study ended rather than waiting
