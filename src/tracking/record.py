"""One study's record: its trials read back incrementally, claims on trial numbers, dead owners.

**Exactly once.** Before a trial runs, the driver creates its child run and claims
``<number>.<attempt>`` on the study's claim ledger (a child run whose params are the claims).
MLflow refuses to log a param a run already has with another value, in one transaction of the
store, so exactly one run holds each claim however many processes or hosts race for it; a loser
deletes its run and moves on. A number is taken again (attempt + 1) only when every claim on it
belongs to a run that is dead: interrupted, retried, or running under an owner that died (on this
host: its pid is gone) or whose heartbeat is older than ``stale_after_s`` (other hosts).
"""

from __future__ import annotations

import bisect
import json
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlflow.entities import LoggedModelOutput, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from src.space import SearchSpace
from src.tracking.common import (
    ATTEMPT,
    CLAIMED,
    CURVE_TAG,
    ERROR,
    HEARTBEAT,
    INTERRUPTED,
    MODEL,
    PROPOSED,
    RECORD,
    RETRIED,
    STRATEGY_TAG_PREFIX,
    TAG_CHARS,
    TRIAL,
    WORKER_DIED,
    Owner,
    digest,
    global_tracking_uri,
    heartbeat_ms,
    now_ms,
    pages,
    proposed_params,
    quote,
    upload,
)
from src.tracking.lineage import DataVersion, code_tags
from src.tracking.store import mlflow_client
from src.tracking.trial_run import TrialSink
from src.tracking.writes import TrialWrites
from src.trial import Direction, Proposal, Trial, TrialState, best_trial

_STATES = {"RUNNING": TrialState.RUNNING, "FINISHED": TrialState.COMPLETE, "FAILED": TrialState.FAILED,
           "KILLED": TrialState.PRUNED}
CLAIM_TRIES = 3  # a claim that fails for another reason than a rival holding it is tried again
MODEL_ALIAS = "best"
REFRESH_MARGIN_MS = 250  # incremental reads look this far back, for runs other processes committed late


@dataclass(frozen=True)
class Attempt:
    """What the record knows of one child run: one attempt at a trial number."""

    run_id: str
    number: int
    attempt: int
    status: str
    claimed: bool  # it won its claim; unclaimed runs are mid-claim, losers, or died before claiming
    superseded: bool  # interrupted or retried: the number is free again once no live claim is left
    trial: Trial | None  # None while its params are not all logged
    proposal: Proposal | None = field(default=None, compare=False)
    error: str | None = None
    model: str | None = None  # the URI of its logged model, if it kept one

    @property
    def live(self) -> bool:
        return self.claimed and not self.superseded


def _number(trial: Trial) -> int:
    return trial.number


_READERS: dict[tuple[TrialSink, Direction], StudyRecord] = {}  # StudyRecord.of, per process


class StudyRecord:
    """One study's parent run: its history (read incrementally), claims, and its summary."""

    def __init__(self, client: MlflowClient, uri: str, experiment_id: str, run_id: str, claims_run_id: str,
                 space: SearchSpace, direction: Direction, refresh_margin_ms: int = REFRESH_MARGIN_MS,
                 stale_after_s: float = 60.0):
        self.client = client
        self.writes = TrialWrites(client)
        self.sink = TrialSink(uri, experiment_id, run_id)
        self.claims_run_id = claims_run_id
        self.space = space
        self.direction = direction
        self.stale_after_s = stale_after_s
        self.data: DataVersion | None = None  # logged as every trial's dataset inputs (see ``use_data``)
        self._margin = refresh_margin_ms
        self._attempts: dict[int, dict[str, Attempt]] = {}
        # What trials(), taken(), retries(), best() and running_elsewhere() answer, kept up to date number by
        # number as attempts change (see _index), so that nothing a trial costs grows with the study.
        self._trials: list[Trial] = []  # live trials by number; a new list at every change
        self._taken: set[int] = set()
        self._frozen: frozenset[int] | None = None  # _taken, as last handed out
        self._retries: dict[int, Proposal] = {}
        self._running: set[str] = set()  # run ids of live attempts that run
        self._best: Trial | None = None
        self._best_stale = False  # the best trial's number changed: found again on the next best()
        self._ended: set[str] = set()  # run ids of live trials that ended
        self._read_at: int | None = None
        self.read_found = 0  # how many runs the last read brought
        self._id = uuid.uuid4().hex[:16]  # tags the runs this record starts
        self._uploaded: dict[str, str] = {}
        self._owner = Owner.me()
        self._promoted: str | None = None  # the run whose model the alias points at, as far as this record knows
        self._claims: dict[str, str] = {}  # the ledger as far as read: claim -> the run holding it
        self._ledger_pass = False  # whether this pass over the runs may read the ledger again (once)

    @classmethod
    def of(cls, sink: TrialSink, space: SearchSpace, direction: Direction) -> StudyRecord:
        """The study a worker writes to, for reading its siblings back (pruning, keeping the best model).

        One per study and process, so each worker reads the study incrementally; it claims nothing.
        """
        key = (sink, direction)
        if key not in _READERS:
            _READERS[key] = cls(mlflow_client(sink.uri), sink.uri, sink.experiment_id, sink.parent_run_id, "", space,
                                direction)
        return _READERS[key]

    @property
    def run_id(self) -> str:
        return self.sink.parent_run_id

    def use_data(self, data: DataVersion) -> None:
        """Record ``data`` as the study's dataset: on the parent now, and on every trial it starts."""
        self.data = data
        self.client.log_inputs(self.run_id, datasets=data.inputs())

    # -- reading ---------------------------------------------------------------------------------

    def history(self, full: bool = False) -> list[Trial]:
        """The live trial of each number that has one, ordered by number.

        The first call (and ``full``) reads every child; later calls read only other processes' children
        started or ended since the previous read, less a margin for runs they committed late: the trials
        this record started it knows already (``start_trial``, ``note``).
        """
        now, self._ledger_pass = now_ms(), True
        if full or self._read_at is None:
            self._attempts.clear()
            self._trials, self._frozen, self._best, self._best_stale = [], None, None, False
            self._taken, self._retries, self._running, self._ended = set(), {}, set(), set()
            runs = list(self._children())
        else:
            since, others = self._read_at - self._margin, f"tags.`{RECORD}` != '{self._id}'"
            runs = [*self._children(f"attributes.start_time >= {since} and {others}"),
                    *self._children(f"attributes.end_time >= {since} and {others}")]
        self._read_at, self.read_found = now, len(runs)
        for run in runs:
            self._remember(run)
        return self.trials()

    def note(self, trial: Trial) -> None:
        """A trial this process ran has ended (as its executor reports it): known without reading it back."""
        known = self._attempts.get(trial.number, {}).get(trial.run_id)
        if known is not None:
            status = next(name for name, state in _STATES.items() if state is trial.state)
            self._put(replace(known, status=status, trial=trial))

    def trials(self) -> list[Trial]:
        """The live trials as last read (and as this process started them), without reading again.

        The same list until the record changes: callers must not modify it.
        """
        return self._trials

    def taken(self) -> frozenset[int]:
        """Numbers with a live claim (running or finished), as far as this record has read."""
        if self._frozen is None:
            self._frozen = frozenset(self._taken)
        return self._frozen

    def best(self) -> Trial | None:
        """The best of ``trials()`` (as ``best_trial`` finds it), kept as trials end rather than searched for."""
        if self._best_stale:
            self._best, self._best_stale = best_trial(self._trials, self.direction), False
        return self._best

    def ended(self) -> int:
        """How many live trials have ended: it changes when one ends (for whoever redraws then), and not when
        the same trials are read again."""
        return len(self._ended)

    def running_elsewhere(self, own: Collection[str]) -> bool:
        """Whether a live trial runs in another process (or in one that died and is not yet settled)."""
        return any(run_id not in own for run_id in self._running)

    def errors(self) -> Counter[str]:
        """How often each error ended a live failed trial (first line, shortened)."""
        live = (a for runs in self._attempts.values() for a in runs.values() if a.live)
        return Counter(a.error.splitlines()[0][:300] for a in live if a.status == "FAILED" and a.error)

    def retry_proposal(self, number: int) -> Proposal | None:
        """What an earlier, dead attempt at ``number`` ran, so that its retry runs exactly that."""
        earlier = [a for a in self._attempts.get(number, {}).values() if a.claimed and a.proposal is not None]
        return max(earlier, key=lambda a: a.attempt).proposal if earlier else None

    def retries(self) -> dict[int, Proposal]:
        """The numbers no live attempt holds whose dead attempt left a proposal: what each should run again.

        Callers must not modify it.
        """
        return self._retries

    def _put(self, attempt: Attempt) -> None:
        self._attempts.setdefault(attempt.number, {})[attempt.run_id] = attempt
        self._index(attempt.number)

    def _index(self, number: int) -> None:
        """Bring what the views answer up to date for ``number``, whose attempts changed: work for one number,
        and a copy of the list of trials (in C) when its trials changed."""
        attempts = self._attempts.get(number, {}).values()
        live = [a for a in attempts if a.live]
        proposal = None if live else self.retry_proposal(number)
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

    def _children(self, condition: str = "") -> Iterator[Any]:
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'" + (f" and {condition}" if condition else "")
        return pages(self.client, self.sink.experiment_id, query)

    def _remember(self, run: Any, claimed: bool = False) -> Attempt | None:
        tags = run.data.tags
        if TRIAL not in tags:
            return None  # the claim ledger
        number, run_id = int(tags[TRIAL]), run.info.run_id
        if run.info.lifecycle_stage != "active":
            self._attempts.get(number, {}).pop(run_id, None)
            self._index(number)
            return None
        try:
            params = self.space.parse(run.data.params or proposed_params(tags))
        except (KeyError, ValueError):
            params = None  # created by an older version that died before logging them
        strategy_tags = {k[len(STRATEGY_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(STRATEGY_TAG_PREFIX)}
        trial = None if params is None else Trial(
            number=number, params=params, state=_STATES.get(run.info.status, TrialState.FAILED),
            value=run.data.metrics.get("objective"), run_id=run_id, tags=strategy_tags,
            curve={int(epoch): value for epoch, value in json.loads(tags.get(CURVE_TAG, "{}")).items()})
        known = self._attempts.get(number, {}).get(run_id)
        tried = int(tags.get(ATTEMPT, 0))
        attempt = Attempt(
            run_id, number, tried, run.info.status,
            claimed=claimed or tags.get(CLAIMED) == "true" or ATTEMPT not in tags or bool(known and known.claimed)
            or self._holder(f"{number}.{tried}", read=run.info.status == "RUNNING" and self._ledger_pass) == run_id,
            superseded=tags.get(INTERRUPTED) == "true" or tags.get(RETRIED) == "true",
            trial=trial, proposal=None if params is None else Proposal(params, strategy_tags), error=tags.get(ERROR),
            model=tags.get(MODEL))
        self._put(attempt)
        return attempt

    # -- claiming --------------------------------------------------------------------------------

    def start_trial(self, number: int, proposal: Proposal, device: str) -> str | None:
        """Create trial ``number``'s run and claim the number for it; None if a live run holds it already.

        Two writes: the run is created with its parameters as a tag (``PROPOSED``; as params after the
        claim if they are too long for one), and the trial's recorder logs them as params with its first
        write, which also marks the run claimed.
        """
        claimed = [a.attempt for a in self._attempts.get(number, {}).values() if a.claimed]
        attempt = max(claimed) + 1 if claimed else 0
        proposed = json.dumps({k: str(v) for k, v in proposal.params.items()})
        tags = {MLFLOW_PARENT_RUN_ID: self.run_id, MLFLOW_RUN_NAME: f"trial-{number:04d}", TRIAL: str(number),
                ATTEMPT: str(attempt), "device": device, HEARTBEAT: str(now_ms()), RECORD: self._id,
                **({PROPOSED: proposed} if len(proposed) <= TAG_CHARS else {}), **self._owner.tags(), **code_tags(),
                **{f"{STRATEGY_TAG_PREFIX}{k}": str(v) for k, v in proposal.tags.items()}}
        run_id, holder = self.writes.start(self.sink.experiment_id, tags[MLFLOW_RUN_NAME], tags, self.claims_run_id,
                                           f"{number}.{attempt}")
        holder = holder or self._claim(number, attempt, run_id)
        while holder != run_id:
            if not self._dead(holder):
                self.client.delete_run(run_id)
                return None
            attempt += 1
            self.client.set_tag(run_id, ATTEMPT, str(attempt))
            holder = self._claim(number, attempt, run_id)
        if PROPOSED not in tags:  # too long for a tag: logged as params now, a write more
            self.writes.log(run_id, params=[Param(k, str(v)) for k, v in proposal.params.items()])
        if self.data is not None:
            self.client.log_inputs(run_id, datasets=self.data.inputs())
        trial = Trial(number, dict(proposal.params), TrialState.RUNNING, run_id=run_id, tags=dict(proposal.tags))
        self._put(Attempt(run_id, number, attempt, "RUNNING", claimed=True, superseded=False, trial=trial,
                          proposal=proposal))
        self._claims[f"{number}.{attempt}"] = run_id
        return run_id

    def _claim(self, number: int, attempt: int, run_id: str) -> str:
        """Log the claim; returns the run that holds it (``run_id`` if this one won)."""
        key = f"{number}.{attempt}"
        for tries in range(1, CLAIM_TRIES + 1):
            try:
                self.client.log_param(self.claims_run_id, key, run_id)
                return run_id
            except MlflowException:
                holder = self._holder(key, read=True)
                if holder is not None:
                    return holder
                if tries == CLAIM_TRIES:
                    raise
                time.sleep(0.1 * tries)
        raise AssertionError("unreachable")

    def _holder(self, key: str, read: bool) -> str | None:
        """The run holding claim ``key`` (``<number>.<attempt>``), as the ledger says.

        Claims never change once logged, so the ledger is read again only when ``read`` and the key is
        not known yet; a record without a ledger (a worker's reader) knows none.
        """
        if key not in self._claims and read and self.claims_run_id:
            self._claims.update(self.client.get_run(self.claims_run_id).data.params)
            self._ledger_pass = False
        return self._claims.get(key)

    def _dead(self, run_id: str) -> bool:
        """Whether the run holding a claim is dead (settling it if its owner died)."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return True
        attempt = self._remember(run, claimed=True)
        if attempt is None or attempt.superseded:
            return True
        if run.info.status == "RUNNING" and self._owner_gone(run):
            self._supersede(run, "interrupted: the process running it stopped")
            return True
        return False

    # -- settling runs whose process is gone -----------------------------------------------------

    def reap(self, own: Collection[str] = ()) -> int:
        """Settle running trials whose owner died, other than ``own``; returns how many.

        On this host an owner is dead when its process is; elsewhere, when its heartbeat is older
        than ``stale_after_s``. Their numbers run again (this does not count towards retries).
        """
        settled, seen, self._ledger_pass = 0, set(), True
        for run in self._children("attributes.status = 'RUNNING'"):
            seen.add(run.info.run_id)
            self._remember(run)
            if run.info.run_id not in own and TRIAL in run.data.tags and self._owner_gone(run):
                self._supersede(run, "interrupted: the process running it stopped")
                settled += 1
        stale = [a.run_id for runs in self._attempts.values() for a in runs.values()
                 if a.status == "RUNNING" and a.run_id not in seen and a.run_id not in own]
        for run_id in stale:  # ended without this record seeing it (committed late): read it again
            try:
                self._remember(self.client.get_run(run_id))
            except MlflowException:
                pass
        return settled

    def _owner_gone(self, run: Any) -> bool:
        owner = Owner.of(run.data.tags)
        if owner.local():
            return not owner.alive()
        return now_ms() - heartbeat_ms(run) > self.stale_after_s * 1000

    def lost(self, run_id: str, reason: str, max_retries: int = 2) -> None:
        """The worker running this trial died: it runs again unless it already died ``max_retries`` times."""
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":
            return  # it ended before its worker did
        number = run.data.tags[TRIAL]
        deaths = sum(1 for _ in self._children(f"tags.{TRIAL} = '{number}' and tags.{WORKER_DIED} = 'true'"))
        if deaths < max_retries:
            self._supersede(run, f"interrupted: {reason}", worker_died=True)
        else:
            self._end(run, [RunTag(ERROR, f"gave up after {deaths + 1} attempts: {reason}"),
                            RunTag(WORKER_DIED, "true")])

    def interrupt_own(self, reason: str) -> int:
        """This process stops: the trials it owns that still run are marked interrupted (they run again on
        resume, without spending a retry); returns how many."""
        own = [run for run in self._children("attributes.status = 'RUNNING'")
               if TRIAL in run.data.tags and Owner.of(run.data.tags) == self._owner]
        for run in own:
            self._supersede(run, f"interrupted: {reason}")
        return len(own)

    def fail_running(self, run_id: str, error: str) -> None:
        """Fail a running trial for good (e.g. it ran past its time limit): it is not retried."""
        run = self.client.get_run(run_id)
        if run.info.status == "RUNNING":
            self._end(run, [RunTag(ERROR, error)])

    def retry_failed(self) -> int:
        """Send every failed trial round again (``retry_failed=true``); returns how many."""
        failed = [run for run in self._children("attributes.status = 'FAILED'") if TRIAL in run.data.tags
                  and run.data.tags.get(INTERRUPTED) != "true" and run.data.tags.get(RETRIED) != "true"]
        for run in failed:
            self.client.set_tag(run.info.run_id, RETRIED, "true")
        self._read_at = None  # tags changed without new times: read everything again
        return len(failed)

    def _supersede(self, run: Any, reason: str, worker_died: bool = False) -> None:
        tags = [RunTag(INTERRUPTED, "true"), RunTag(ERROR, reason)]
        self._end(run, tags + ([RunTag(WORKER_DIED, "true")] if worker_died else []))

    def _end(self, run: Any, tags: list[RunTag]) -> None:
        """Fail a run for its dead or stopped process: a claimed run gets the params and the ``claimed`` tag
        its recorder may not have lived to write, so that its number's retry finds what it ran."""
        known = self._remember(run)
        if known is not None and known.claimed and run.data.tags.get(CLAIMED) != "true":
            params = [Param(k, v) for k, v in proposed_params(run.data.tags).items() if k not in run.data.params]
            tags = [RunTag(CLAIMED, "true"), *tags]
        else:
            params = []
        self.writes.end(run.info.run_id, "FAILED", params=params, tags=tags)
        self._remember(self.client.get_run(run.info.run_id))

    # -- the parent's summary ------------------------------------------------------------------

    def write_summary(self, trials: list[Trial], extra: Mapping[str, float] | None = None) -> None:
        """Put the best trial and the counts (and ``extra`` metrics) on the parent run, so the UI shows them."""
        best = best_trial(trials, self.direction)
        counts = {state: sum(t.state is state for t in trials) for state in TrialState}
        now = now_ms()
        step = sum(t.finished for t in trials)
        metrics = [Metric(f"n_{state.value}", counts[state], now, step) for state in
                   (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED)]
        metrics += [Metric(name, float(value), now, step) for name, value in (extra or {}).items()]
        tags = []
        if best is not None:
            metrics.append(Metric("best_objective", best.value, now, step))
            tags = [RunTag("best_run_id", best.run_id), RunTag("best_trial", str(best.number)),
                    *(RunTag(f"best.{k}", str(v)) for k, v in best.params.items())]
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        """Upload files that are new or changed since this record last uploaded them."""
        changed = {name: content for name, content in files.items() if self._uploaded.get(name) != digest(content)}
        upload(self.client, self.run_id, changed)
        self._uploaded |= {name: digest(content) for name, content in changed.items()}

    def promote(self, best: Trial | None, name: str) -> None:
        """Point the registered model ``name``'s alias ``best`` at the best trial's logged model.

        The model is registered (a new version) the first time it becomes the best, and linked to the
        parent run as an output; nothing is done while the alias already points at it, or when the best
        trial kept no model.
        """
        attempt = self._attempts.get(best.number, {}).get(best.run_id) if best else None
        if attempt is None or attempt.model is None or self._promoted == best.run_id:
            return
        from mlflow.exceptions import RestException

        try:
            current = self.client.get_model_version_by_alias(name, MODEL_ALIAS)
        except (MlflowException, RestException):
            current = None
        if current is None or current.run_id != best.run_id:
            try:
                self.client.create_registered_model(name, tags={"parent_run_id": self.run_id}, description=(
                    f"The best trial's model of study {name!r}; @{MODEL_ALIAS} moves as better trials finish."))
            except MlflowException:
                pass  # registered before (by this study's other processes, or a study of the same name)
            found = self.client.search_model_versions(f"name = '{quote(name)}' and run_id = '{best.run_id}'")
            model_id = attempt.model.removeprefix("models:/")
            with global_tracking_uri(self.sink.uri):  # a server refuses a models:/ source without its model id
                version = found[0] if found else self.client.create_model_version(
                    name, attempt.model, run_id=best.run_id, model_id=model_id)
            self.client.set_registered_model_alias(name, MODEL_ALIAS, version.version)
            self.client.log_outputs(self.run_id, [LoggedModelOutput(model_id, step=best.number)])  # its Models column
        self._promoted = best.run_id

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
