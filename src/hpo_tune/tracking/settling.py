"""Settling trials whose process is gone: reaping dead owners, lost workers, time limits, stopped drivers.

A mixin of ``MlflowTrialStore`` (``record.py``), kept apart because it is the part that writes other
drivers' runs: every run it ends gets ``interrupted`` (its number runs again) or an error that ends it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mlflow.entities import Param, RunTag, ViewType

from hpo_tune.tracking.common import (
    CLAIMED,
    ERROR,
    INTERRUPTED,
    RETRIED,
    TRIAL,
    WORKER_DIED,
    Owner,
    heartbeat_ms,
    now_ms,
    pages,
    proposed_params,
)

STALE_PER_QUERY = 100  # run ids in one search (MLflow's filters have no limit on IN lists; SQL has)


class Settling:
    """Needs ``client``, ``writes``, ``index``, ``stale_after_s``, ``_owner``, ``_children`` and ``_remember``."""

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
        stale = [a.run_id for a in self.index.running() if a.run_id not in seen and a.run_id not in own]
        for start in range(0, len(stale), STALE_PER_QUERY):  # ended since this store read them: read them again,
            ids = ", ".join(f"'{run_id}'" for run_id in stale[start:start + STALE_PER_QUERY])  # one query per many
            for run in pages(self.client, self.sink.experiment_id, f"attributes.run_id IN ({ids})", ViewType.ALL):
                self._remember(run)
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
        its recorder may not have lived to write (a start on a SQL store wrote the tag already), so that its
        number's retry finds what it ran."""
        known = self._remember(run)
        params, claimed = [], run.data.tags.get(CLAIMED) == "true"
        if known is not None and known.claimed:
            params = [Param(k, v) for k, v in proposed_params(run.data.tags).items() if k not in run.data.params]
            tags = tags if claimed else [RunTag(CLAIMED, "true"), *tags]
        self.writes.end(run.info.run_id, "FAILED", params=params, tags=tags)
        self._remember(self.client.get_run(run.info.run_id))
