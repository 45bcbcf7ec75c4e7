"""Shared fixtures: a throwaway tracking store, composed configs at a tiny scale, CLI runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

import hpo_tune.resolvers  # noqa: F401 - the resolvers the configs use
from hpo_tune.server import local_postgres, local_server

ROOT = Path(__file__).resolve().parent.parent
IMPORT_PATH = os.pathsep.join([str(ROOT / "src"), str(ROOT)])  # a subprocess's PYTHONPATH: hpo_tune and tests
DATA = ROOT / "data"
TINY = [
    "dataset.subset=200", "dataset.val_size=100", "trainer.epochs=1", "model.conv_channels=[4]",
    "model.dense=[8]", "progress=false",
]


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session (creating its tables costs seconds); tests use unique studies."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def study_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def mnist_available() -> None:
    if not (DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail("data/mnist is missing: run `dvc pull` before the tests (the README's test command does)")


@pytest.fixture
def make_config(store: str, study_name: str, tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the project's config, tracked in the session store; ``base`` defaults to tiny MNIST."""

    def make(*overrides: str, base: Sequence[str] = TINY) -> DictConfig:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("config", [*base, f"tracking.uri={store}", f"study={study_name}", *overrides])

    return make


def runs(uri: str, filter_string: str = "") -> list:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string, max_results=10000) if experiments else []


def children(uri: str, parent_run_id: str) -> list:
    """Every child run of a study's parent: its trial runs (every attempt), and nothing else."""
    kids = runs(uri, f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    assert all("trial" in run.data.tags for run in kids), "a child of the parent is not a trial"
    return kids


def interruptible() -> None:
    """Ctrl-C as at a terminal: a test run started in the background inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m src.tune`` as a user would."""
    return subprocess.run([sys.executable, "-m", "src.tune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow tracking server (127.0.0.1, SQLite behind it) for the tests that need a server."""
    with local_server(tmp_path_factory.mktemp("server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def postgres_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL (127.0.0.1) for the session: its SQLAlchemy URI. Skips, saying why, where
    PostgreSQL cannot start."""
    pytest.importorskip("psycopg2", reason="PostgreSQL unavailable: no driver (pip install -e '.[postgres]')")
    with ExitStack() as stack:
        try:
            backend = stack.enter_context(local_postgres(tmp_path_factory.mktemp("postgres")))
        except RuntimeError as reason:
            pytest.skip(f"PostgreSQL unavailable: {reason}")
        yield backend


@pytest.fixture(scope="session")
def postgres_tracking_server(postgres_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow tracking server with the session's PostgreSQL behind it; a server that fails on a running
    PostgreSQL fails the test."""
    with local_server(tmp_path_factory.mktemp("postgres-server"), backend=postgres_backend) as uri:
        yield uri


SHARED_STORES = ["sqlite", "sqlite-server", "postgres-server"]
# The slowest concurrent-writer tests (20 s a store) run on the local file and the server on PostgreSQL: the
# server's code is the same in front of SQLite, which the faster ones still cover.
SLOW_SHARED_STORES = pytest.mark.parametrize("shared_store", ["sqlite", "postgres-server"], indirect=True)


@pytest.fixture(params=SHARED_STORES)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes write at once: a local SQLite file, or a tracking server with SQLite or
    PostgreSQL behind it, so tests of concurrent writers run on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = {"sqlite-server": "tracking_server", "postgres-server": "postgres_tracking_server"}[request.param]
    return request.getfixturevalue(server)


def interrupted_at(call: int, objective: Callable[[Any], Any], calls: list[int]) -> Callable[[Any, Any], Any]:
    """``objective`` that appends each trial's number to ``calls`` and raises KeyboardInterrupt (Ctrl-C) in the
    ``call``-th: a study stopped mid-run, for the resume tests."""

    def run(params: Any, trial: Any) -> Any:
        calls.append(trial.number)
        if len(calls) == call:
            raise KeyboardInterrupt
        return objective(params)

    return run
