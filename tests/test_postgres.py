"""The tracking server with PostgreSQL behind it: runs track through it, and a missing PostgreSQL says why."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import hpo_tune.server
from hpo_tune import optimize
from hpo_tune.server import local_postgres
from tests.conftest import children


def test_a_study_tracks_through_a_postgres_backed_server(postgres_tracking_server: str, study_name: str) -> None:
    result = optimize(lambda params: params["x"] ** 2, {"x": {"type": "float", "low": 0.0, "high": 1.0}}, n_trials=3,
                      study=study_name, tracking_uri=postgres_tracking_server, progress=False)
    trials = children(postgres_tracking_server, result.parent_run_id)
    assert [run.info.status for run in trials] == ["FINISHED"] * 3
    assert sorted(run.data.metrics["objective"] for run in trials) == sorted(t.value for t in result.trials)
    assert MlflowClient(postgres_tracking_server).get_run(result.parent_run_id).data.tags["study"] == study_name


def test_missing_postgres_binaries_raise_an_error_that_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(hpo_tune.server, "DEBIAN_POSTGRES", tmp_path)
    with pytest.raises(RuntimeError, match="no PostgreSQL server binaries"), local_postgres(tmp_path):
        pass
