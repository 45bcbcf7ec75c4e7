"""What a store knows of a study's attempts, and the views the driver asks of them, kept number by number.

Every store (MLflow's, the in-memory twin) records *attempts*: one per run of a trial number. An attempt
is *live* when it won its number's claim and was not superseded (interrupted, retried); each number has
at most one live attempt. ``TrialIndex`` answers what the driver asks at every step (the live trials,
the numbers taken, the numbers to run again, the best trial, which trials run) and is brought up to date
for one number at a time as its attempts change, so nothing a trial costs grows with the study.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from hpo_tune.trial import Direction, Proposal, Resume, Trial, TrialState, best_trial

STATUSES = {"RUNNING": TrialState.RUNNING, "FINISHED": TrialState.COMPLETE, "FAILED": TrialState.FAILED,
            "KILLED": TrialState.PRUNED}  # a run's status (MLflow's names) -> its trial's state
STATUS_OF = {state: status for status, state in STATUSES.items()}


@dataclass(frozen=True)
class Attempt:
    """What a store knows of one attempt at a trial number (one run)."""

    run_id: str
    number: int
    attempt: int
    status: str  # RUNNING, FINISHED, FAILED or KILLED
    claimed: bool  # it won its claim; unclaimed runs are mid-claim, losers, or died before claiming
    superseded: bool  # interrupted or retried: the number is free again once no live claim is left
    trial: Trial | None  # None while its params are not all logged
    proposal: Proposal | None = field(default=None, compare=False)
    error: str | None = None
    model: str | None = None  # the URI of its logged model, if it kept one
    checkpoint: int | None = None  # the last epoch it saved a state at (``Recorder.checkpoint``), if any

    @property
    def live(self) -> bool:
        return self.claimed and not self.superseded


def _number(trial: Trial) -> int:
    return trial.number


class TrialIndex:
    """A study's attempts as one reader knows them, and the driver's views of them. Not thread-safe: one
    reader (one driver, or one worker's pruner) owns it."""

    def __init__(self, direction: Direction):
        self.direction = direction
        self.clear()

    def clear(self) -> None:
        self.attempts: dict[int, dict[str, Attempt]] = {}
        self._trials: list[Trial] = []  # live trials by number; a new list at every change
        self._taken: set[int] = set()
        self._frozen: frozenset[int] | None = None  # _taken, as last handed out
        self._retries: dict[int, Proposal] = {}
        self._running: set[str] = set()  # run ids of live attempts that run
        self._best: Trial | None = None
        self._best_stale = False  # the best trial's number changed: found again on the next best()
        self._ended: set[str] = set()  # run ids of live trials that ended

    # -- what the driver asks -------------------------------------------------------------------

    def trials(self) -> list[Trial]:
        """The live trials by number: the same list until the index changes (callers must not modify it)."""
        return self._trials

    def taken(self) -> frozenset[int]:
        """Numbers with a live claim (running or finished)."""
        if self._frozen is None:
            self._frozen = frozenset(self._taken)
        return self._frozen

    def best(self) -> Trial | None:
        """The best of ``trials()`` (as ``best_trial`` finds it), kept as trials end rather than searched for."""
        if self._best_stale:
            self._best, self._best_stale = best_trial(self._trials, self.direction), False
        return self._best

    def ended(self) -> int:
        """How many live trials have ended: it changes when one ends, not when the same trials are read again."""
        return len(self._ended)

    def running_elsewhere(self, own: Collection[str]) -> int:
        """How many live trials run that are not one of ``own`` (run ids)."""
        return sum(run_id not in own for run_id in self._running)

    def retries(self) -> dict[int, Proposal]:
        """Numbers no live attempt holds whose dead attempt left a proposal: what each should run again.
        Callers must not modify it."""
        return self._retries

    def resume_point(self, number: int) -> Resume | None:
        """The latest state a dead attempt at ``number`` saved (attempts that resumed one and died before saving
        another leave the earlier one as the latest)."""
        saved = [a for a in self.attempts.get(number, {}).values()
                 if a.claimed and not a.live and a.checkpoint is not None and a.trial is not None]
        if not saved:
            return None
        last = max(saved, key=lambda a: (a.checkpoint, a.attempt))
        epoch, trial = last.checkpoint, last.trial
        return Resume(epoch, {k: v for k, v in trial.curve.items() if k <= epoch},
                      {k: v for k, v in trial.rungs.items() if k <= epoch}, last.run_id)

    def errors(self) -> Counter[str]:
        """How often each error ended a live failed trial (first line, shortened)."""
        live = (a for runs in self.attempts.values() for a in runs.values() if a.live)
        return Counter(a.error.splitlines()[0][:300] for a in live if a.status == "FAILED" and a.error)

    def next_attempt(self, number: int) -> int:
        """The attempt a new claim on ``number`` takes: one past every claimed attempt known."""
        claimed = [a.attempt for a in self.attempts.get(number, {}).values() if a.claimed]
        return max(claimed) + 1 if claimed else 0

    def get(self, number: int, run_id: str) -> Attempt | None:
        return self.attempts.get(number, {}).get(run_id)

    def running(self) -> list[Attempt]:
        return [a for runs in self.attempts.values() for a in runs.values() if a.status == "RUNNING"]

    # -- keeping it up to date ------------------------------------------------------------------

    def put(self, attempt: Attempt) -> None:
        self.attempts.setdefault(attempt.number, {})[attempt.run_id] = attempt
        self._reindex(attempt.number)

    def drop(self, number: int, run_id: str) -> None:
        """Forget a run (deleted from the store), in the views too: it is no longer among the number's attempts."""
        self.attempts.get(number, {}).pop(run_id, None)
        self._running.discard(run_id)
        self._ended.discard(run_id)
        self._reindex(number)

    def _retry_proposal(self, number: int) -> Proposal | None:
        """What an earlier, dead attempt at ``number`` ran, so that its retry runs exactly that."""
        earlier = [a for a in self.attempts.get(number, {}).values() if a.claimed and a.proposal is not None]
        return max(earlier, key=lambda a: a.attempt).proposal if earlier else None

    def _reindex(self, number: int) -> None:
        """Bring the views up to date for ``number``, whose attempts changed: work for one number, and a copy
        of the list of trials (in C) when its trials changed."""
        attempts = self.attempts.get(number, {}).values()
        live = [a for a in attempts if a.live]
        proposal = None if live else self._retry_proposal(number)
        if live:
            self._taken.add(number)
        else:
            self._taken.discard(number)
        if proposal is None:
            self._retries.pop(number, None)
        else:
            self._retries[number] = proposal
        self._frozen = None
        for known in (self._running, self._ended):
            known.difference_update(a.run_id for a in attempts)
        self._running.update(a.run_id for a in live if a.status == "RUNNING")
        self._ended.update(a.run_id for a in live if a.trial is not None and a.trial.finished)
        trials = [a.trial for a in live if a.trial is not None]
        low = bisect.bisect_left(self._trials, number, key=_number)
        high = bisect.bisect_right(self._trials, number, key=_number)
        if self._trials[low:high] == trials:
            return
        self._trials = [*self._trials[:low], *trials, *self._trials[high:]]
        if self._best is not None and self._best.number == number:
            self._best_stale = True  # it may be gone or changed: the next best() looks again
        elif not self._best_stale:  # the best of it and the new trials, in number order as best_trial breaks ties
            self._best = best_trial(sorted([*filter(None, [self._best]), *trials], key=_number), self.direction)


class IndexedViews:
    """What every store answers from its ``TrialIndex`` (``index``) without reading, and ``note``: the reading
    views of ``TrialStore``, written once for both stores."""

    index: TrialIndex

    def trials(self) -> list[Trial]:
        return self.index.trials()

    def taken(self) -> frozenset[int]:
        return self.index.taken()

    def retries(self) -> dict[int, Proposal]:
        return self.index.retries()

    def best(self) -> Trial | None:
        return self.index.best()

    def resume_point(self, number: int) -> Resume | None:
        return self.index.resume_point(number)

    def ended(self) -> int:
        return self.index.ended()

    def running_elsewhere(self, own: Collection[str]) -> int:
        return self.index.running_elsewhere(own)

    def errors(self) -> Counter[str]:
        return self.index.errors()

    def note(self, trial: Trial) -> None:
        """A trial this driver ran has ended (as its executor reports it): known without reading it back."""
        known = self.index.get(trial.number, trial.run_id)
        if known is not None:
            self.index.put(replace(known, status=STATUS_OF[trial.state], trial=trial))

    def kept_model(self, best: Trial | None) -> str | None:
        """The URI of the model ``best`` kept, as far as read; None if it kept none."""
        attempt = self.index.get(best.number, best.run_id) if best else None
        return None if attempt is None else attempt.model
