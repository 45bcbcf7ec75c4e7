"""The study store: the one interface between the driver and wherever a study's trials are kept.

Like Optuna's ``BaseStorage``, it is small, and each method says what it guarantees. Two stores
implement it: ``hpo_tune.tracking.MlflowTrialStore`` (MLflow: a parent run per study, a child run per
trial; the claims on trial numbers in a ledger out of the user's experiment) and
``hpo_tune.storage.memory.InMemoryStore`` (plain Python, for tests and the search bench), on which the
same ``Driver`` runs.

**Who calls what.** A ``TrialStore`` object belongs to one driver (one process's loop) and is called
from that driver's thread only, except where a method says otherwise; the study it stands for may be
fed by any number of drivers, in any number of processes and hosts, each with its own store object.
What a trial writes while it runs goes through a ``TrialSink``, which travels with the trial to
whichever worker runs it (a process, a Ray actor) and makes a ``Recorder`` there.

**Exactly once.** ``start_trial`` claims a number atomically across all drivers of the study: for each
``(number, attempt)`` exactly one run wins, however many race for it. A number is claimed again
(attempt + 1) only once every claim on it belongs to a dead run: interrupted, retried, or running under
an owner that died (on its host: its pid is gone; elsewhere: its heartbeat is older than
``stale_after_s``). A store never loses a trial that a recorder ended, and never shows two live trials
for one number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from hpo_tune.space import SearchSpace
from hpo_tune.trial import Direction, Proposal, Resume, Trial


class StudyReader(Protocol):
    """What a worker reads back of its study (pruners, keeping the best model): the live trials."""

    def history(self, full: bool = False) -> list[Trial]:
        """The live trial of each number that has one, ordered by number; incremental after the first call
        (``full`` reads everything again)."""

    def rung_values(self, epoch: int) -> dict[int, float]:
        """The value each live trial recorded at rung ``epoch`` (``Recorder.rung``), running ones included,
        read now: what a multi-fidelity pruner compares with."""


class Recorder(Protocol):
    """Writes one claimed trial's results, in the worker that runs it. One per trial; not shared."""

    run_id: str
    curve: dict[int, float]  # the objective metric per epoch reported so far

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch metrics; may be buffered, but are on record by the time the trial ends."""

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None: ...

    def rung(self, epoch: int, value: float) -> None:
        """Record the trial's value at rung ``epoch``, on record for every reader before this returns."""

    def checkpoint(self, epoch: int, state: Any) -> None:
        """Keep ``state`` as the trial's state after ``epoch`` (and its curve so far), for a re-run of the trial
        if its worker dies: on record for every reader before this returns."""

    def restore(self, epoch: int, run_id: str | None = None) -> Any:
        """The state saved at ``epoch`` (``pause``, ``checkpoint``) by this trial's run, or by the earlier run
        ``run_id``; None if it saved none."""

    def log_model(self, model: Any, input_example: Any) -> str:
        """Keep the trained model; returns a URI that ``TrialStore.promote`` can register."""

    def system_metrics(self, enabled: bool) -> AbstractContextManager[None]: ...

    def complete(self, value: float, duration_s: float, model: str | None = None,
                 values: tuple[float, ...] = ()) -> None:
        """End the run FINISHED with ``value`` (and, in a study of several objectives, all its ``values``)."""

    def prune(self, reason: str, duration_s: float) -> None: ...

    def pause(self, epoch: int, state: Any, duration_s: float) -> None:
        """End this run of the trial at rung ``epoch``, PAUSED, keeping ``state`` (if not None) to resume from."""

    def fail(self, error: BaseException, duration_s: float, interrupted: bool = False) -> None:
        """End the trial FAILED; ``interrupted`` ones run again (a stopped study), others count as failed."""


class TrialSink(Protocol):
    """Where a trial's worker writes: plain data for a store that other processes reach (picklable)."""

    def recorder(self, run_id: str, params: Mapping[str, Any], curve_metric: str | None) -> Recorder: ...

    def reader(self, space: SearchSpace, direction: Direction) -> StudyReader:
        """A new reader of the study, for a worker that has none yet (it keeps it for its later trials)."""


class Heartbeat(Protocol):
    """Says, from a background thread, that the runs added are alive. ``add``/``discard`` are thread-safe."""

    def add(self, run_id: str) -> None: ...

    def discard(self, run_id: str) -> None: ...

    def close(self) -> None: ...


class TrialStore(StudyReader, Protocol):
    """One study as one driver sees it: its history, claims, liveness, settling and summary."""

    run_id: str  # the study's id (MLflow: its parent run)
    sink: TrialSink
    stale_after_s: float  # another host's running trial whose heartbeat is older than this is dead
    read_found: int  # how many changed runs the last ``history`` read brought (the driver paces reads by it)

    # -- reading the history: ``history`` reads; the rest answer from what was read, without reading --

    def trials(self) -> list[Trial]:
        """The live trials as last read (and as this driver started and noted them); the same list object
        until something changes, which callers must not modify."""

    def taken(self) -> frozenset[int]:
        """Numbers with a live claim (running or finished), as far as read."""

    def retries(self) -> Mapping[int, Proposal]:
        """Numbers no live attempt holds whose dead attempt left a proposal: what each should run again."""

    def best(self) -> Trial | None: ...

    def resume_point(self, number: int) -> Resume | None:
        """Where a re-run of ``number`` (one of ``retries``) goes on from: the latest state a dead attempt saved
        (``Recorder.checkpoint``), or None to start again."""

    def ended(self) -> int:
        """How many live trials have ended (a counter that moves when one ends)."""

    def running_elsewhere(self, own: Collection[str]) -> int:
        """How many live trials run that are not one of ``own`` (this driver's run ids)."""

    def errors(self) -> Counter[str]: ...

    # -- claiming ----------------------------------------------------------------------------------

    def start_trial(self, number: int, proposal: Proposal, device: str) -> str | None:
        """Create trial ``number``'s run and claim the number for it: its run id, or None when a live run
        of another driver holds it. Atomic across drivers (see the module docstring)."""

    def resume_trial(self, trial: Trial, epoch: int, device: str) -> str | None:
        """Promote paused ``trial`` past rung ``epoch``: claim the promotion (exactly one driver wins it, as
        ``start_trial`` claims a number) and reopen its run, RUNNING again under this driver; its run id, or
        None when another driver holds the promotion."""

    def note(self, trial: Trial) -> None:
        """A trial this driver started has ended, as its executor reports it: known without reading back."""

    # -- heartbeats and reaping --------------------------------------------------------------------

    def heartbeat(self, interval_s: float) -> Heartbeat:
        """Start beating for the runs this driver adds; closed when the driver stops."""

    def reap(self, own: Collection[str] = ()) -> int:
        """Settle running trials, other than ``own``, whose owner died (they run again); returns how many."""

    # -- settling a trial --------------------------------------------------------------------------

    def lost(self, run_id: str, reason: str, max_retries: int = 2) -> None:
        """The worker running this trial died: it runs again unless it already died ``max_retries`` times."""

    def fail_running(self, run_id: str, error: str) -> None:
        """Fail a running trial for good (it ran past its time limit): it is not retried."""

    def interrupt_own(self, reason: str) -> int:
        """This driver stops: its running trials are interrupted (they run again on resume); how many."""

    def retry_failed(self) -> int:
        """Send every failed trial round again; returns how many."""

    # -- the study's summary -----------------------------------------------------------------------

    def write_summary(self, trials: list[Trial], extra: Mapping[str, float] | None = None) -> None:
        """The best trial and the counts (and ``extra`` numbers), where users look for them."""

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        """The strategy's tables and plots, on the study; only files that changed are written again."""

    def promote(self, best: Trial | None, name: str) -> None:
        """Make ``best``'s kept model the study's registered best model (nothing if it kept none)."""

    def end(self, status: str) -> None:
        """This driver is done with the study (FINISHED, FAILED or KILLED)."""

