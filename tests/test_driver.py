"""The driver: its background rendering of a strategy's tables and plots, and its loop on the in-memory store."""

import threading
import time

import pytest

from hpo_tune.execution import InlineExecutor, Outcome
from hpo_tune.explainer import ARTIFACT_INTERVAL_S, Explainer
from hpo_tune.space import SearchSpace
from hpo_tune.storage.memory import InMemoryStore, run_in_memory
from hpo_tune.storage.memory_runs import MemoryStudy
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction, Proposal, Trial, TrialState


class FromThirdTrial:
    """Explains itself once three trials are in, as the factorial does once its phase 1 is."""

    def __init__(self):
        self.rendered: list[int] = []

    def artifacts(self, history):
        self.rendered.append(len(history))
        return {"table.md": f"{len(history)} trials"} if len(history) >= 3 else {}


def finished(n: int) -> list[Trial]:
    return [Trial(k, {"x": 0.1 * k}, TrialState.COMPLETE, float(k)) for k in range(n)]


def settle(explainer: Explainer, history: list[Trial]) -> dict:
    files = explainer.poll(history, len(history))  # every trial here ended: one ending each
    if explainer._pending is not None:
        explainer._pending.result()
        files |= explainer.poll(history, len(history))
    return files


def test_renders_in_the_background_as_soon_as_there_is_something_to_show_then_at_intervals():
    strategy = FromThirdTrial()
    explainer = Explainer(strategy)
    try:
        assert settle(explainer, finished(1)) == {}  # nothing to show yet, and no interval holds it back
        assert settle(explainer, finished(2)) == {}
        assert settle(explainer, finished(3)) == {"table.md": "3 trials"}  # drawn now, not only at the end
        assert settle(explainer, finished(4)) == {}  # from now on, at most every ARTIFACT_INTERVAL_S
        assert strategy.rendered == [1, 2, 3]
        start = time.perf_counter()
        assert explainer.finish(finished(4), 4) == {"table.md": "4 trials"}  # the end has everything
        assert explainer.waited_s <= time.perf_counter() - start
        assert ARTIFACT_INTERVAL_S >= 10
    finally:
        explainer.close()


# -- the real Driver on the in-memory store (hpo_tune.storage.memory) -------------------------------------------

SPACE = SearchSpace.from_config({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def random_strategy(seed: int = 0):
    return make_strategy("random", SPACE, seed, Direction.MINIMIZE)


def square(params, trial):
    return params["x"] ** 2


def test_the_driver_runs_each_number_below_the_budget_once():
    study = MemoryStudy()
    trials = run_in_memory(random_strategy(), square, 7, study=study)
    assert [t.number for t in trials] == list(range(7))
    assert all(t.state is TrialState.COMPLETE and t.value == t.params["x"] ** 2 for t in trials)
    assert len(study.runs) == 7 and study.status == "FINISHED"
    assert study.summary["best_trial"] == min(trials, key=lambda t: t.value).number


def test_a_resumed_study_runs_only_the_missing_trials():
    study = MemoryStudy()
    first = run_in_memory(random_strategy(), square, 4, study=study)
    calls = []
    more = run_in_memory(random_strategy(), lambda p, t: calls.append(t.number) or square(p, t), 6, study=study)
    assert calls == [4, 5]
    assert more[:4] == first


def test_a_failing_trial_is_failed_and_the_study_goes_on():
    def sometimes(params, trial):
        if trial.number == 1:
            raise ValueError("diverged")
        return square(params, trial)

    study = MemoryStudy()
    trials = run_in_memory(random_strategy(), sometimes, 4, study=study)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE,
                                         TrialState.COMPLETE]
    assert study.runs["1.0"].error == "ValueError: diverged"


def test_drivers_in_threads_on_one_study_run_each_number_once():
    study, barrier = MemoryStudy(), threading.Barrier(3)

    def feed(seed: int) -> None:
        barrier.wait()
        run_in_memory(random_strategy(seed), lambda p, t: time.sleep(0.002) or square(p, t), 30, study=study)

    threads = [threading.Thread(target=feed, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = sorted(run.number for run in study.runs.values())
    assert numbers == list(range(30))  # one run per number: a loser of a claim writes none
    assert len({run.owner for run in study.runs.values()}) > 1  # they did share the work


def test_a_dead_drivers_trial_is_reaped_and_run_again_with_its_parameters():
    study = MemoryStudy()
    victim = InMemoryStore(study, Direction.MINIMIZE)
    victim.history()
    orphan = victim.start_trial(0, Proposal({"x": 0.5}), "cpu")
    victim.kill()  # a SIGKILL: it writes nothing more
    trials = run_in_memory(random_strategy(), square, 3, study=study)
    assert study.runs[orphan].superseded and study.runs[orphan].status == "FAILED"
    assert trials[0].params == {"x": 0.5} and trials[0].value == 0.25 and trials[0].run_id == "0.1"


class DyingWorkers(InlineExecutor):
    """Loses every trial numbered ``doomed``, as if its worker process died."""

    def __init__(self, doomed: int):
        super().__init__()
        self.doomed = doomed

    def wait(self) -> Outcome:
        if self._queued and self._queued[0].number == self.doomed:
            job, self._queued = self._queued[0], []
            return Outcome(lost=[job.number])
        return super().wait()


def test_a_lost_trial_runs_again_until_its_retries_are_spent():
    study = MemoryStudy()
    trials = run_in_memory(random_strategy(), square, 3, study=study, executor=DyingWorkers(1), max_retries=2)
    attempts = sorted((run.attempt, run.error) for run in study.runs.values() if run.number == 1)
    assert [a for a, _ in attempts] == [0, 1, 2]
    assert attempts[-1][1].startswith("gave up after 3 attempts")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE]


class WorkerDeath(BaseException):
    """The worker vanishing mid-trial: nothing of the trial runs after it, not even its recorder's ending."""


class DiesMidTrial(InlineExecutor):
    """Reports a trial whose objective raised ``WorkerDeath`` as lost, as an executor whose worker died does."""

    def wait(self) -> Outcome:
        number = self._queued[0].number
        try:
            return super().wait()
        except WorkerDeath:
            return Outcome(lost=[number])


def test_a_lost_trial_goes_on_from_the_last_state_it_saved_and_ends_as_if_it_never_died():
    study, starts = MemoryStudy(), []

    def total(params, trial):  # five epochs adding x; trial 1's worker dies at epoch 4 the first time
        saved = trial.restore()
        first, value = (1, 0.0) if saved is None else (saved.epoch + 1, saved.state)
        starts.append((trial.number, first))
        for epoch in range(first, 6):
            value += params["x"]
            if trial.number == 1 and epoch == 4 and len(starts) == 2:
                raise WorkerDeath
            trial.report(epoch, {"loss": value}, checkpoint=lambda value=value: value)
        return value

    trials = run_in_memory(random_strategy(), total, 3, study=study, executor=DiesMidTrial(), metric="loss",
                           checkpoint_every=2)
    assert starts == [(0, 1), (1, 1), (1, 3), (2, 1)]  # saved at epoch 2, died at 4: goes on at 3
    again = trials[1]
    assert again.value == pytest.approx(5 * again.params["x"]) and sorted(again.curve) == [1, 2, 3, 4, 5]
    assert sorted(study.runs["1.0"].checkpoints) == [2] and study.runs["1.0"].superseded

    starts.clear()
    run_in_memory(random_strategy(), total, 3, executor=DiesMidTrial(), metric="loss")  # saves nothing
    assert starts == [(0, 1), (1, 1), (1, 1), (2, 1)]  # so it starts again at epoch 1


def test_a_killed_drivers_checkpointed_trial_goes_on_from_its_checkpoint_in_the_next_driver():
    study, starts = MemoryStudy(), []
    victim = InMemoryStore(study, Direction.MINIMIZE)
    victim.history()
    orphan = victim.start_trial(0, Proposal({"x": 0.5}), "cpu")
    saver = victim.sink.recorder(orphan, {"x": 0.5}, "loss")
    for epoch in (1, 2):
        saver.report(epoch, {"loss": 0.5 * epoch})
    saver.checkpoint(2, 1.0)  # its running total after two epochs of adding x
    victim.kill()  # SIGKILLed at epoch 3: the next driver reaps the trial and runs it again

    def total(params, trial):
        saved = trial.restore()
        first, value = (1, 0.0) if saved is None else (saved.epoch + 1, saved.state)
        starts.append((trial.number, first))
        for epoch in range(first, 5):
            value += params["x"]
            trial.report(epoch, {"loss": value}, checkpoint=lambda value=value: value)
        return value

    trials = run_in_memory(random_strategy(), total, 2, study=study, metric="loss", checkpoint_every=1)
    assert starts[0] == (0, 3)  # not from epoch 1
    assert trials[0].value == pytest.approx(2.0) and sorted(trials[0].curve) == [1, 2, 3, 4]


def test_a_process_alone_claims_the_lowest_free_numbers_and_beside_rivals_spreads_its_claims():
    import random
    from types import SimpleNamespace

    from hpo_tune.driver import Driver

    free = list(range(10, 40))
    alone = SimpleNamespace(_rng=random.Random(0))
    assert Driver._spread(alone, free, 3, rivals=0) == [10, 11, 12]  # one process: in order, as before
    picks = [Driver._spread(SimpleNamespace(_rng=random.Random(seed)), free, 1, rivals=15) for seed in range(16)]
    assert all(p[0] in free[:16] for p in picks)  # among the lowest slots + rivals
    assert len({p[0] for p in picks}) >= 6  # sixteen rivals mostly claim different numbers, not all number 10
    assert Driver._spread(alone, [5, 6], 3, rivals=4) == [5, 6]  # fewer free than slots: all of them


def test_lost_claims_widen_the_free_numbers_a_process_spreads_its_next_claims_over(monkeypatch):
    """Rivals that the view misses (they started since the last read) show only as lost claims: each loss doubles
    the rivals guessed, so the next claims spread wider instead of colliding on the lowest number again."""
    import random
    from types import SimpleNamespace

    tried = []
    real_start = InMemoryStore.start_trial

    def start(self, number, proposal, device):
        tried.append(number)
        return None if len(tried) <= 4 else real_start(self, number, proposal, device)  # an unseen rival won

    monkeypatch.setattr(InMemoryStore, "start_trial", start)
    monkeypatch.setattr("hpo_tune.driver.random", SimpleNamespace(Random=lambda: random.Random(1)))
    trials = run_in_memory(random_strategy(), square, 12)
    assert tried[0] == 0 and len(set(tried[:5])) >= 3  # alone, the lowest; after losses, spread over more
    assert sorted(t.number for t in trials) == list(range(12))  # and still every number, once
