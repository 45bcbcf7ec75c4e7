"""A trial's start, and each of its later writes, as one SQL transaction on a database store.

Through MLflow's client a trial's start is two transactions (create the run, log the claim), and each
``log_batch`` up to five (the run read back, then params, metrics, latest metrics and tags, each in a session
of its own); ``create_run`` also reads the experiment in a session of its own and builds the new run's
inputs. On a local SQLite store that was most of a study's overhead beyond its training (see the README's
performance section). Here each moment is one transaction that writes the same rows into MLflow's own
tables, through MLflow's own table models, with MLflow's own validation and latest-metric rule (as one
upsert, not a read and a write), with statements built once per store: a reader
(MLflow's UI, its search, this project's record) cannot tell the runs apart, and a process killed
mid-write leaves all of the moment on record or none of it.

Used for SQLite and PostgreSQL stores (their ``INSERT ... ON CONFLICT`` makes the claim one statement), by
a study's processes on a local store and by the project's server for its own store (``server_app``);
``SqlWrites.of`` says None for any other store, which then gets MLflow's calls.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, SourceType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_param_keys_unique,
    _validate_run_id,
)
from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from hpo_tune.tracking.common import CLAIMED

DIALECTS = {"sqlite": sqlite, "postgresql": postgresql}  # those whose insert has on_conflict_do_*
SCHEMA = "dc11669786a5"  # MLflow's schema revision (3.17, 3.18) that tests/test_sql_writes.py checked these on

log = logging.getLogger(__name__)


class SqlWrites:
    """A trial run's start and writes on one SQL store, one transaction each."""

    def __init__(self, store: SqlAlchemyStore):
        self.store = store
        insert = DIALECTS[store.db_type].insert
        self.add_params = insert(SqlParam.__table__).on_conflict_do_nothing()  # a claim too: the loser adds none
        self.add_new_params = self.add_params.returning(SqlParam.key)  # which were new
        self.add_metrics = insert(SqlMetric.__table__).on_conflict_do_nothing()
        tags = insert(SqlTag.__table__)
        self.set_tags = tags.on_conflict_do_update(index_elements=["key", "run_uuid"],
                                                   set_={"value": tags.excluded.value})
        latest, table = insert(SqlLatestMetric.__table__), SqlLatestMetric.__table__.c
        newer = (tuple_(latest.excluded.step, latest.excluded.timestamp, latest.excluded.value)
                 > tuple_(table.step, table.timestamp, table.value))  # MLflow's rule: (step, timestamp, value)
        self.set_latest = latest.on_conflict_do_update(
            index_elements=["key", "run_uuid"], where=newer,
            set_={name: getattr(latest.excluded, name) for name in ("value", "timestamp", "step", "is_nan")})

    @classmethod
    def of(cls, store: object) -> SqlWrites | None:
        """For MLflow's own SQL store on SQLite (3.35 or later: ``RETURNING``) or PostgreSQL at the schema these
        writes were checked on; None for any other (a subclass, such as the workspace-aware server store, scopes
        its queries in ways these statements would not; another schema may hold what they do not write)."""
        if (type(store) is not SqlAlchemyStore or store.db_type not in DIALECTS
                or not store.engine.dialect.insert_executemany_returning):
            return None
        return cls(store) if _checked_schema(SCHEMA) else None

    def start(self, experiment_id: str, run_name: str, tags: Mapping[str, str], ledger: str, claim: str,
              losing_run: bool = False) -> tuple[str | None, str | None]:
        """Log ``claim`` on the ``ledger`` run with a new run id as its value and, if it won, create that run in
        ``experiment_id``: (the new run's id, or None if the claim was lost and no run made; the run holding the
        claim: the new one, or the rival that got it first). The claim, the run and its ``claimed`` tag are
        committed together: a process killed before leaves none of them, other processes that meet the run
        need not read the ledger, and a lost claim leaves no run to delete. ``losing_run`` makes the run even
        when the claim is lost (what clients of version 1 of the server's routes expect)."""
        if tags.get(MLFLOW_RUN_NAME, run_name) != run_name:
            raise MlflowException(f"run_name {run_name!r} and the {MLFLOW_RUN_NAME} tag differ",
                                  INVALID_PARAMETER_VALUE)
        run_id = uuid.uuid4().hex
        with self.store.ManagedSessionMaker(read_only=False) as session:
            where = SqlExperiment.experiment_id == int(experiment_id)
            stage, location, ledger_stage = session.execute(select(  # one round trip for the three
                select(SqlExperiment.lifecycle_stage).where(where).scalar_subquery(),
                select(SqlExperiment.artifact_location).where(where).scalar_subquery(),
                select(SqlRun.lifecycle_stage).where(SqlRun.run_uuid == ledger).scalar_subquery())).one()
            _check_active("experiment", experiment_id, stage)
            _check_active("run", ledger, ledger_stage)
            won = session.execute(self.add_params, {"run_uuid": ledger, "key": claim, "value": run_id}).rowcount
            if not won:
                held = (SqlParam.run_uuid == ledger) & (SqlParam.key == claim)
                holder = session.scalar(select(SqlParam.value).where(held))
                if not losing_run:
                    return None, holder
            session.execute(SqlRun.__table__.insert().values(
                run_uuid=run_id, name=run_name, experiment_id=int(experiment_id),
                artifact_uri=append_to_uri_path(location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME),
                source_type=SourceType.to_string(SourceType.UNKNOWN), source_name="", entry_point_name="",
                user_id=tags.get(MLFLOW_USER, "unknown"), status=RunStatus.to_string(RunStatus.RUNNING),
                start_time=get_current_time_millis(), source_version="", lifecycle_stage=LifecycleStage.ACTIVE))
            written = {**tags, MLFLOW_RUN_NAME: run_name, **({CLAIMED: "true"} if won else {})}
            session.execute(SqlTag.__table__.insert(), [{"run_uuid": run_id, "key": k, "value": v}
                                                        for k, v in written.items()])
        return run_id, run_id if won else holder

    def write(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
              tags: Sequence[RunTag] = (), status: str | None = None) -> None:
        """What MLflow's ``log_batch`` writes (within its limits), and then ``status`` with the end time if
        given, in one transaction."""
        _validate_run_id(run_id)
        metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
        _validate_batch_log_limits(metrics, params, tags)
        _validate_param_keys_unique(params)
        with self.store.ManagedSessionMaker(read_only=False) as session:
            active = (SqlRun.run_uuid == run_id) & (SqlRun.lifecycle_stage == LifecycleStage.ACTIVE)
            if status is None:
                found = session.scalar(select(SqlRun.run_uuid).where(active))
            else:  # the end: its status is set first, which also says whether the run is there to write
                found = session.execute(update(SqlRun).where(active).values(
                    status=RunStatus.to_string(RunStatus.from_string(status)), end_time=get_current_time_millis())
                ).rowcount
            if not found:
                _check_active("run", run_id, session.scalar(select(SqlRun.lifecycle_stage).where(
                    SqlRun.run_uuid == run_id)))
            self._log_params(session, run_id, params)
            self._log_metrics(session, run_id, metrics)
            self._set_tags(session, run_id, tags)

    def _log_params(self, session: Any, run_id: str, params: Sequence[Param]) -> None:
        """MLflow's rule: a param logged again with its value is a no-op, with another value an error. Those
        already there are read only when the insert meets one."""
        if not params:
            return
        added = set(session.scalars(self.add_new_params,
                                    [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in params]))
        if len(added) == len(params):
            return
        logged = dict(session.execute(select(SqlParam.key, SqlParam.value).where(
            SqlParam.run_uuid == run_id, SqlParam.key.in_([p.key for p in params if p.key not in added]))).all())
        changed = [{"key": p.key, "old_value": logged[p.key], "new_value": p.value}
                   for p in params if p.key in logged and logged[p.key] != p.value]
        if changed:
            raise MlflowException(f"Changing param values is not allowed. Params were already logged='{changed}' "
                                  f"for run ID='{run_id}'.", INVALID_PARAMETER_VALUE)

    def _log_metrics(self, session: Any, run_id: str, metrics: Sequence[Metric]) -> None:
        """Every value (a repeat of a logged one is a no-op, as in MLflow), and the run's latest per key."""
        if not metrics:
            return
        rows, latest = [], {}
        for metric in metrics:
            is_nan, value = self.store.sanitize_metric_value(metric.value)
            row = {"run_uuid": run_id, "key": metric.key, "value": value, "timestamp": metric.timestamp,
                   "step": metric.step, "is_nan": is_nan}
            rows.append(row)
            order = (row["step"], row["timestamp"], row["value"])
            if metric.key not in latest or order > latest[metric.key][0]:  # the first of equals, as in MLflow
                latest[metric.key] = order, row
        session.execute(self.add_metrics, rows)
        session.execute(self.set_latest, [row for _, row in latest.values()])

    def _set_tags(self, session: Any, run_id: str, tags: Sequence[RunTag]) -> None:
        """Set or overwrite; the run-name tag also renames the run, as in MLflow."""
        if not tags:
            return
        latest = {t.key: t.value for t in tags}
        session.execute(self.set_tags, [{"run_uuid": run_id, "key": k, "value": v} for k, v in latest.items()])
        if MLFLOW_RUN_NAME in latest:
            session.execute(update(SqlRun).where(SqlRun.run_uuid == run_id).values(name=latest[MLFLOW_RUN_NAME]))


@functools.cache
def _checked_schema(checked: str) -> bool:
    """Whether MLflow's schema is the ``checked`` one; says once per process when it is not."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    if (revision := _get_latest_schema_revision()) == checked:
        return True
    log.warning("MLflow's schema revision is %s, not %s: trials are written with MLflow's own calls (slower; "
                "tests/test_sql_writes.py says whether the one-transaction writes still match)", revision, checked)
    return False


def _check_active(kind: str, name: str, stage: str | None) -> None:
    """MLflow's errors for a missing (``stage`` None), or a deleted, experiment or run."""
    if stage is None:
        raise MlflowException(f"No {kind} with id={name} exists", RESOURCE_DOES_NOT_EXIST)
    if stage != LifecycleStage.ACTIVE:
        raise MlflowException(f"The {kind} {name} must be in the 'active' state. Current state is {stage}.",
                              INVALID_PARAMETER_VALUE)
