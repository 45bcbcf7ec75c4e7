"""The loop that feeds one study from one process, the same for every strategy, executor and store.

Read the history back from the store (``hpo_tune.storage.base.TrialStore``: MLflow, or in memory), ask
the strategy for parameters for the trial numbers still free (or re-run a dead attempt's parameters),
claim each number in the store, hand the claimed trials to the executor, settle what it reports, and
repeat until every number below the budget is finished or the strategy says it is done. Under a
promote-mode pruner (``hpo_tune.pruning.halving``) a free worker first resumes a paused trial that has become
one of the best of its rung, and the study goes on until no paused trial qualifies. A dead attempt's re-run
goes on from the last state it saved (``checkpoint_every``), if any. Other
processes may feed the same study: their claims and trials show up in the history, a number one of
them holds is left to it, and a trial whose owner died is settled (``TrialStore.reap``) and run again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm.auto import tqdm

from hpo_tune.execution import Executor, Outcome, Resume, TrialJob
from hpo_tune.explainer import Explainer
from hpo_tune.pruning import Pruner
from hpo_tune.storage.base import TrialStore
from hpo_tune.strategies import Strategy
from hpo_tune.trial import Proposal, Trial

SUMMARY_INTERVAL_S = 2.0  # how often a running study refreshes its parent's best value and counts (all its processes)
READ_INTERVAL_S = 1.0  # how often it reads back other processes' trials while its own keep it busy,
MAX_READ_INTERVAL_S = 16.0  # and, doubling each time a read finds nothing new, at least this often
CLAIM_ROUNDS = 3  # claims tried at once on other free numbers after one is lost, before waiting


@dataclass(frozen=True)
class Liveness:
    """How a driver shows it is alive, and when it takes another's silence for death."""

    heartbeat_interval_s: float = 10.0
    stale_after_s: float = 60.0
    poll_interval_s: float = 2.0  # how often to look again while other processes run the trials


class Driver:
    """Runs one study's trials from this process until none is left to run."""

    def __init__(self, record: TrialStore, strategy: Strategy, runner: Executor, budget: int,
                 make_job: Callable[..., TrialJob], device: str, name: str, progress: bool, max_retries: int,
                 liveness: Liveness, explain: bool = True, pruner: Pruner | None = None, seed: int = 0,
                 metric: str = "objective"):
        self.record, self.strategy, self.runner, self.budget = record, strategy, runner, budget
        self.promoting = pruner.halving if pruner is not None and pruner.promotes else None
        self.promoted_elsewhere: set[tuple[str, int]] = set()  # (run id, rung): promotions another process holds
        self.seed = seed
        self.make_job, self.device, self.name, self.progress = make_job, device, name, progress
        self.max_retries, self.liveness = max_retries, liveness
        self.heartbeat = record.heartbeat(liveness.heartbeat_interval_s)
        self.inflight: dict[int, str] = {}  # trial number -> its run, for the trials this process runs
        self.finished = False  # the strategy said so: only dead attempts' retries remain to run
        self.explainer = Explainer(strategy if explain else None, pruner, seed, metric)
        self._standings: tuple[list[Trial] | None, Trial | None, int] = (None, None, 0)  # see _standing
        self._rng = random.Random()  # which free numbers to claim beside rivals (_spread): not the trials' content
        self._unseen = 0  # rivals the view misses, guessed from lost claims (``_claim_slots``)

    def run(self) -> list[Trial]:
        record = self.record
        record.reap()
        history = record.history()
        bar = tqdm(total=min(self.budget, self.strategy.max_trials() or self.budget), initial=self._done(history),
                   desc=self.name, unit="trial", disable=not self.progress, dynamic_ncols=True)
        summarised = reaped = read = time.monotonic()
        read_every = READ_INTERVAL_S
        with bar:
            while True:
                self._fill()
                if self.runner.busy():
                    self._settle(self.runner.wait())
                elif record.running_elsewhere(self._own()):
                    time.sleep(self.liveness.poll_interval_s)
                    record.reap(self._own())
                    reaped = time.monotonic()
                else:  # nothing runs anywhere: read everything once more before concluding
                    record.reap(self._own())
                    record.history(full=True)
                    if not record.running_elsewhere(self._own()):
                        if not self._free(1) and not self._promotions():
                            self._show(bar, record.trials())
                            break
                        if self._fill() == 0:
                            raise RuntimeError(f"strategy {self.strategy.name!r} proposed nothing while no trial "
                                               "is running")
                if time.monotonic() - reaped >= self.liveness.heartbeat_interval_s:
                    record.reap(self._own())
                    reaped = time.monotonic()
                if time.monotonic() - read >= read_every:  # other processes' trials; ours are noted as they end
                    history, read = record.history(), time.monotonic()
                    read_every = READ_INTERVAL_S if record.read_found else min(2 * read_every, MAX_READ_INTERVAL_S)
                else:
                    history = record.trials()
                record.promote(self._standing(history)[0], self.name)
                rivals = record.running_elsewhere(self._own())  # the study's processes share the refreshes
                if time.monotonic() - summarised >= SUMMARY_INTERVAL_S * (1 + rivals):
                    record.write_summary(history)
                    summarised = time.monotonic()
                record.log_artifacts(self.explainer.poll(history, record.ended()))
                self._show(bar, history)
        history = record.trials()  # as the last, full read before leaving the loop found them
        record.promote(self._standing(history)[0], self.name)
        record.log_artifacts(self.explainer.finish(history, record.ended()))
        record.write_summary(history, {"artifacts_wait_s": self.explainer.waited_s})
        return history

    def stop(self) -> None:
        """Stop the workers; trials this process still runs are marked interrupted (they run again on resume)."""
        try:
            self.runner.close()
            self.record.interrupt_own("the study's process was stopped")
        finally:
            self.heartbeat.close()
            self.explainer.close()

    def _own(self) -> set[str]:
        return set(self.inflight.values())

    def _free(self, most: int | None = None) -> list[int]:
        """Numbers below the budget that no live attempt holds and that this process could start: the lowest
        ``most`` of them (all if None), found among as few numbers as can hold them, with set operations."""
        taken, inflight = self.record.taken(), self.inflight
        if self.finished:
            return sorted(k for k in self.record.retries() if k < self.budget and k not in inflight)[:most]
        end = self.budget if most is None else min(self.budget, len(taken) + len(inflight) + most)
        return sorted(set(range(end)).difference(taken, inflight))[:most]

    def _promotions(self) -> list[tuple[Trial, int]]:
        """Paused trials (not this process's) now among the best of their rung, with the rung's epoch."""
        if self.promoting is None:
            return []
        trials = self.record.trials()
        paused = [t for t in trials if t.paused and t.number not in self.inflight
                  and (t.run_id, max(t.rungs, default=0)) not in self.promoted_elsewhere]
        # In promote mode a trial records a rung only as it pauses there (its run ends), so the values at every
        # rung are in the history as read: no query per decision (a stale read delays a promotion, no more).
        recorded: dict[int, dict[int, float]] = {}
        for trial in trials if paused else []:
            for epoch, value in trial.rungs.items():
                recorded.setdefault(epoch, {})[trial.number] = value
        draining = self.finished or not self._free(1)
        return self.promoting.promotions(paused, recorded, self.seed, self.strategy.direction, draining)

    def _promote(self, slots: int) -> int:
        """Resume up to ``slots`` promoted trials; returns how many this process won."""
        resumed = 0
        for trial, epoch in self._promotions()[:slots] if slots > 0 else []:
            run_id = self.record.resume_trial(trial, epoch, self.device)
            if run_id is None:  # another process promoted it first (or died doing so: it stays paused)
                self.promoted_elsewhere.add((trial.run_id, epoch))
                continue
            self.heartbeat.add(run_id)
            self.runner.submit(self.make_job(number=trial.number, proposal=Proposal(trial.params, trial.tags),
                                             run_id=run_id, resume=Resume(epoch, trial.curve, trial.rungs)))
            self.inflight[trial.number] = run_id
            resumed += 1
        return resumed

    def _fill(self) -> int:
        """Resume promoted trials, then propose for the free slots, claim and submit; returns how many trials
        were resumed or proposed. A claim lost to another process is followed at once by a read of what the
        others started since the last one (an incremental read: a search or two) and a claim on another free
        number (up to ``CLAIM_ROUNDS`` times), not by a wait: a lost claim means the view is stale, and
        claiming blind from it loses again (each loss costs a write, a read and a delete)."""
        proposed = self._promote(self.runner.free_slots())
        for round in range(CLAIM_ROUNDS):
            slots = self.runner.free_slots()
            if round and slots > 0:
                self.record.history()
            tried = self._claim_slots(slots) if slots > 0 else 0
            proposed += tried
            if tried == 0 or self.runner.free_slots() == 0:
                break
        return proposed

    def _claim_slots(self, slots: int) -> int:
        """Propose for up to ``slots`` free numbers, claim each and submit those won; how many were tried.

        A lost claim says the view misses rivals (processes that started trials since the last read): their
        guessed number doubles with each loss and halves with each win, and widens the numbers claims are
        spread over, so many processes starting together stop colliding on the lowest free numbers."""
        waiting = self.record.retries()
        rivals = self.record.running_elsewhere(self._own()) + self._unseen
        free = self._free(slots + len(waiting) + rivals)
        retries = {k: waiting[k] for k in free if k in waiting}
        batch = list(retries.items())[:slots]
        fresh = self._spread([k for k in free if k not in retries], slots - len(batch), rivals)
        if fresh and not self.finished:
            decision = self.strategy.propose(self.record.trials(), fresh)
            self.finished = decision.finished
            batch += list(zip(fresh, decision.proposals))
        for number, proposal in batch:
            resume = self.record.resume_point(number) if number in retries else None
            run_id = self.record.start_trial(number, proposal, self.device)
            self._unseen = max(1, 2 * self._unseen) if run_id is None else self._unseen // 2
            if run_id is None:
                continue  # another process holds this number
            self.heartbeat.add(run_id)
            self.runner.submit(self.make_job(number=number, proposal=proposal, run_id=run_id, resume=resume))
            self.inflight[number] = run_id
        return len(batch)

    def _spread(self, free: list[int], count: int, rivals: int) -> list[int]:
        """Which ``count`` of the ``free`` numbers (lowest first) to claim: the lowest, unless ``rivals`` trials run
        in other processes; then ``count`` picked at random among the lowest ``count + rivals``. With N processes
        all taking the lowest number, all but one lose each claim, and each loss costs requests to the store."""
        if rivals == 0 or len(free) <= count:
            return free[:count]
        return sorted(self._rng.sample(free[: count + rivals], count))

    def _settle(self, outcome: Outcome) -> None:
        for trial in outcome.finished:
            self._release(trial.number)
            self.record.note(trial)
        for number in outcome.lost:
            self.record.lost(self._release(number), "its worker died", self.max_retries)
        for number in outcome.timed_out:
            self.record.fail_running(self._release(number),
                                     "TrialTimeout: the trial ran past its time limit and was stopped")

    def _release(self, number: int) -> str:
        run_id = self.inflight.pop(number)
        self.heartbeat.discard(run_id)
        return run_id

    def _done(self, history: list[Trial]) -> int:
        return sum(t.finished and t.number < self.budget for t in history)

    def _standing(self, history: list[Trial]) -> tuple[Trial | None, int]:
        """The best trial and how many are done, worked out again only when the record's list of trials is a
        new one (it is the same list until the record changes)."""
        if history is not self._standings[0]:  # only a shown progress bar needs the count, which takes a pass
            self._standings = (history, self.record.best(), self._done(history) if self.progress else 0)
        return self._standings[1:]

    def _show(self, bar: tqdm, history: list[Trial]) -> None:
        best, bar.n = self._standing(history)
        if best is not None:
            bar.set_postfix(best=f"{best.value:.4g}", refresh=False)
        bar.refresh()
