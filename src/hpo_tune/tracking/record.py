"""One study in MLflow, as one driver sees it: the ``TrialStore`` interface (``hpo_tune.storage.base``).

A study is a parent run and its trials are child runs (``hpo_tune.tracking``'s docstring has the layout).
Reading is incremental: the first ``history`` reads every child, later ones only the runs other drivers
started or ended since, less a margin for late commits. **Exactly once**: before a trial runs, the driver
creates its run and claims ``<number>.<attempt>`` on the study's claim ledger, a run in the companion
experiment ``<experiment> (hpo ledger)`` whose params are the claims (``studies.py``; studies made before
it keep their ledger as a ``claims`` child of the parent). MLflow refuses to log a param a run already has
with another value, in one transaction of the store, so exactly one run holds each claim however many
processes or hosts race for it; a loser deletes its run and moves on. A number is taken again
(attempt + 1) only when every claim on it belongs to a dead run (``settling.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from hpo_tune.space import SearchSpace
from hpo_tune.storage.index import STATUSES, Attempt, IndexedViews, TrialIndex
from hpo_tune.tracking.common import (
    ATTEMPT,
    CHECKPOINT,
    CLAIMED,
    CURVE_TAG,
    ERROR,
    HEARTBEAT,
    INTERRUPTED,
    MODEL,
    PAUSED,
    PROMOTED_PREFIX,
    PROPOSED,
    RECORD,
    RETRIED,
    RUNG_PREFIX,
    STATE,
    STRATEGY_TAG_PREFIX,
    TAG_CHARS,
    TRIAL,
    Owner,
    now_ms,
    objective_values,
    pages,
    proposed_params,
)
from hpo_tune.tracking.lineage import DataVersion, code_tags
from hpo_tune.tracking.parent_run import ParentRun
from hpo_tune.tracking.settling import Settling
from hpo_tune.tracking.trial_run import Heartbeat, TrialSink
from hpo_tune.tracking.writes import TrialWrites
from hpo_tune.trial import Direction, Proposal, Trial, TrialState

CLAIM_TRIES = 3  # a claim that fails for another reason than a rival holding it is tried again
REFRESH_MARGIN_MS = 250  # incremental reads look this far back, for runs other processes committed late


class MlflowTrialStore(IndexedViews, Settling):
    """One study's parent run, its trials and its claim ledger, for one driver (or one worker's reader, which
    has no ledger and claims nothing)."""

    def __init__(self, client: MlflowClient, uri: str, experiment_id: str, run_id: str, claims_run_id: str,
                 space: SearchSpace, direction: Direction, refresh_margin_ms: int = REFRESH_MARGIN_MS,
                 stale_after_s: float = 60.0):
        self.client = client
        self.writes = TrialWrites(client)
        self.sink = TrialSink(uri, experiment_id, run_id)
        self.parent = ParentRun(client, uri, run_id, direction)
        self.claims_run_id = claims_run_id
        self.space = space
        self.direction = direction
        self.stale_after_s = stale_after_s
        self.data: DataVersion | None = None  # logged as every trial's dataset inputs (see ``use_data``)
        self.index = TrialIndex(direction)
        self._margin = refresh_margin_ms
        self._read_at: int | None = None
        self.read_found = 0  # how many runs the last read brought
        self._id = uuid.uuid4().hex[:16]  # tags the runs this store starts
        self._owner = Owner.me()
        self._claims: dict[str, str] = {}  # the ledger as far as read: claim -> the run holding it
        self._ledger_pass = False  # whether this pass over the runs may read the ledger again (once)

    @property
    def run_id(self) -> str:
        return self.sink.parent_run_id

    def use_data(self, data: DataVersion) -> None:
        """Record ``data`` as the study's dataset: on the parent now, and on every trial it starts."""
        self.data = data
        self.parent.use_data(data)

    # -- reading ---------------------------------------------------------------------------------

    def history(self, full: bool = False) -> list[Trial]:
        """The live trial of each number that has one, ordered by number.

        The first call (and ``full``) reads every child; later calls read only other processes' children
        started or ended since the previous read, less a margin for runs they committed late: the trials
        this store started it knows already (``start_trial``, ``note``).
        """
        now, self._ledger_pass = now_ms(), True
        if full or self._read_at is None:
            self.index.clear()
            runs = list(self._children())
        else:
            since, others = self._read_at - self._margin, f"tags.`{RECORD}` != '{self._id}'"
            runs = [*self._children(f"attributes.start_time >= {since} and {others}"),
                    *self._children(f"attributes.end_time >= {since} and {others}")]
        self._read_at, self.read_found = now, len(runs)
        for run in runs:
            self._remember(run)
        return self.index.trials()

    def rung_values(self, epoch: int) -> dict[int, float]:
        """One query: the runs that recorded rung ``epoch``, less superseded and deleted ones."""
        values = {}
        for run in self._children(f"tags.`{RUNG_PREFIX}{epoch}` LIKE '%'"):
            tags = run.data.tags
            if TRIAL in tags and tags.get(INTERRUPTED) != "true" and tags.get(RETRIED) != "true":
                values[int(tags[TRIAL])] = float(tags[f"{RUNG_PREFIX}{epoch}"])
        return values

    def _children(self, condition: str = "") -> Iterator[Any]:
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.run_id}'" + (f" and {condition}" if condition else "")
        return pages(self.client, self.sink.experiment_id, query)

    def _remember(self, run: Any, claimed: bool = False) -> Attempt | None:
        tags = run.data.tags
        if TRIAL not in tags:
            return None  # an old study's claim ledger
        number, run_id = int(tags[TRIAL]), run.info.run_id
        if run.info.lifecycle_stage != "active":
            self.index.drop(number, run_id)
            return None
        try:
            params = self.space.parse(run.data.params or proposed_params(tags))
        except (KeyError, ValueError):
            params = None  # created by an older version that died before logging them
        strategy_tags = {k[len(STRATEGY_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(STRATEGY_TAG_PREFIX)}
        trial = None if params is None else Trial(
            number=number, params=params, state=STATUSES.get(run.info.status, TrialState.FAILED),
            value=run.data.metrics.get("objective"), run_id=run_id, tags=strategy_tags,
            curve={int(epoch): value for epoch, value in json.loads(tags.get(CURVE_TAG, "{}")).items()},
            rungs={int(k[len(RUNG_PREFIX):]): float(v) for k, v in tags.items() if k.startswith(RUNG_PREFIX)},
            paused=tags.get(STATE) == PAUSED and run.info.status == "KILLED",
            values=objective_values(run.data.metrics))
        known = self.index.get(number, run_id)
        tried = int(tags.get(ATTEMPT, 0))
        attempt = Attempt(
            run_id, number, tried, run.info.status,
            claimed=claimed or tags.get(CLAIMED) == "true" or ATTEMPT not in tags or bool(known and known.claimed)
            or self._holder(f"{number}.{tried}", read=run.info.status == "RUNNING" and self._ledger_pass) == run_id,
            superseded=tags.get(INTERRUPTED) == "true" or tags.get(RETRIED) == "true",
            trial=trial, proposal=None if params is None else Proposal(params, strategy_tags), error=tags.get(ERROR),
            model=tags.get(MODEL), checkpoint=int(tags[CHECKPOINT]) if CHECKPOINT in tags else None)
        self.index.put(attempt)
        return attempt

    # -- claiming --------------------------------------------------------------------------------

    def start_trial(self, number: int, proposal: Proposal, device: str) -> str | None:
        """Create trial ``number``'s run and claim the number for it; None if a live run holds it already.

        Two writes: the run is created with its parameters as a tag (``PROPOSED``; as params after the
        claim if they are too long for one), and the trial's recorder logs them as params with its first
        write, which also marks the run claimed.
        """
        attempt = self.index.next_attempt(number)
        proposed = json.dumps({k: str(v) for k, v in proposal.params.items()})
        tags = {MLFLOW_PARENT_RUN_ID: self.run_id, MLFLOW_RUN_NAME: f"trial-{number:04d}", TRIAL: str(number),
                ATTEMPT: str(attempt), "device": device, HEARTBEAT: str(now_ms()), RECORD: self._id,
                **({PROPOSED: proposed} if len(proposed) <= TAG_CHARS else {}), **self._owner.tags(), **code_tags(),
                **{f"{STRATEGY_TAG_PREFIX}{k}": str(v) for k, v in proposal.tags.items()}}
        run_id, holder = self._start(tags, f"{number}.{attempt}")
        while holder != run_id:
            if not self._dead(holder):
                if run_id is not None:  # made before its claim was lost (MLflow's calls)
                    self.client.delete_run(run_id)
                return None
            attempt += 1
            if run_id is None:
                run_id, holder = self._start({**tags, ATTEMPT: str(attempt)}, f"{number}.{attempt}")
            else:
                self.client.set_tag(run_id, ATTEMPT, str(attempt))
                holder = self._claim(f"{number}.{attempt}", run_id)
        if PROPOSED not in tags:  # too long for a tag: logged as params now, a write more
            self.writes.log(run_id, params=[Param(k, str(v)) for k, v in proposal.params.items()])
        if self.data is not None:
            self.client.log_inputs(run_id, datasets=self.data.inputs())
        trial = Trial(number, dict(proposal.params), TrialState.RUNNING, run_id=run_id, tags=dict(proposal.tags))
        self.index.put(Attempt(run_id, number, attempt, "RUNNING", claimed=True, superseded=False, trial=trial,
                               proposal=proposal))
        self._claims[f"{number}.{attempt}"] = run_id
        return run_id

    def _start(self, tags: Mapping[str, str], claim: str) -> tuple[str | None, str]:
        """(the new run's id, or None where the lost claim made none; the run holding ``claim``)."""
        run_id, holder = self.writes.start(self.sink.experiment_id, tags[MLFLOW_RUN_NAME], tags, self.claims_run_id,
                                           claim)
        return run_id, holder or self._claim(claim, run_id)

    def resume_trial(self, trial: Trial, epoch: int, device: str) -> str | None:
        """Claim ``<number>.<attempt>/<epoch>`` for this store (its id is the value: every rival logs another),
        then reopen the run under this driver: its owner and heartbeat, the tag ``promoted.<epoch>`` (who
        promoted it), RUNNING, and an end time of now, so that other drivers' incremental reads see it run again."""
        known = self.index.get(trial.number, trial.run_id)
        if known is None:
            return None
        key = f"{trial.number}.{known.attempt}/{epoch}"
        if self._claims.get(key, self._id) != self._id or self._claim(key, self._id) != self._id:
            return None
        self.writes.log(trial.run_id, tags=[RunTag(k, v) for k, v in {
            **self._owner.tags(), HEARTBEAT: str(now_ms()), RECORD: self._id, "device": device,
            f"{PROMOTED_PREFIX}{epoch}": f"{self._owner.host}:{self._owner.pid}"}.items()])
        self.client.delete_tag(trial.run_id, STATE)
        self.client.set_terminated(trial.run_id, "RUNNING")  # MLflow's one call that sets a status and the end time
        running = replace(trial, state=TrialState.RUNNING, paused=False)
        self.index.put(replace(known, status="RUNNING", trial=running))
        return trial.run_id

    def _claim(self, key: str, holder: str) -> str:
        """Log the claim ``key`` with the value ``holder``; returns what holds it (``holder`` if this won)."""
        for tries in range(1, CLAIM_TRIES + 1):
            try:
                self.client.log_param(self.claims_run_id, key, holder)
                self._claims[key] = holder
                return holder
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

    def heartbeat(self, interval_s: float) -> Heartbeat:
        return Heartbeat(self.sink.uri, interval_s)

    # -- the parent's summary ------------------------------------------------------------------

    def write_summary(self, trials: list[Trial], extra: Mapping[str, float] | None = None) -> None:
        self.parent.write_summary(trials, extra)

    def log_artifacts(self, files: Mapping[str, str | bytes]) -> None:
        self.parent.log_artifacts(files)

    def promote(self, best: Trial | None, name: str) -> None:
        """Make the best trial's logged model the registered model ``name``'s ``@best`` (if it kept one)."""
        model = self.kept_model(best)
        if model is not None:
            self.parent.promote(best, model, name)

    def end(self, status: str) -> None:
        self.parent.end(status)
