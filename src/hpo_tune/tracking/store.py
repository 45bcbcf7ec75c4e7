"""Opening a tracking store: a bad URI or an unwritable store is one line, and a new store is made whole.

MLflow creates a SQLite store's schema in place, table by table; a process killed meanwhile leaves a
file on which every later run fails (``table datasets already exists``). Here a new store is built
in a temporary file beside the target and linked into place only once complete, and a half-made
store that holds no runs (left by an older version or by MLflow itself) is rebuilt once it has stopped
changing (while it changes, another client is building it in place). Servers and databases are
checked for reachability with a short timeout, instead of MLflow's minutes of retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from hpo_tune.errors import ConfigError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

KEY = "tracking.uri"
SCHEMES = {"sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks", "databricks-uc", "uc"}
REACH_TIMEOUT_S = 5.0
STALE_BUILD_S = 3600  # a leftover temporary store older than this belongs to a killed process
QUIET_S = 5.0  # a half-made store unchanged this long was left by a killed process, not one building it now
POLL_S = 0.2
_READY: set[str] = set()  # URIs this process has already checked and prepared


def connect(uri: str) -> MlflowClient:
    """A client for ``uri`` after checking the store is usable, creating or repairing it if needed."""
    if uri not in _READY:
        check(uri)
        path = sqlite_path(uri) if _scheme(uri) == "sqlite" else None
        if path is not None:
            _prepare_sqlite(path, uri)
        _READY.add(uri)
    return mlflow_client(uri)


def mlflow_client(uri: str) -> MlflowClient:
    """A client for a store already checked (by this process or the driver that started it)."""
    from mlflow.tracking import MlflowClient

    relax_sqlite_syncs()
    return MlflowClient(tracking_uri=uri)


@functools.cache
def relax_sqlite_syncs() -> None:
    """Give every new SQLite connection of this process ``_relax_wal_syncs``, once (clients and servers)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _relax_wal_syncs)


def _relax_wal_syncs(connection: object, _record: object) -> None:
    """WAL stores sync at checkpoints only (``synchronous=NORMAL``), not at every commit: a killed process
    loses nothing it committed; a power cut may undo the last commits, together, so the store stays
    consistent and exactly-once (those trials run again). Stores in other journal modes are left alone."""
    if isinstance(connection, sqlite3.Connection) and connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        connection.execute("PRAGMA synchronous=NORMAL")


def check(uri: str) -> None:
    """Raise ``ConfigError`` (one line) unless ``uri`` names a store this process can use; creates nothing.

    It loads no MLflow, so that a mistake comes back in a moment.
    """
    scheme = _scheme(uri)
    plugins = {entry.name for entry in entry_points(group="mlflow.tracking_store")}
    if scheme not in SCHEMES | plugins:
        raise ConfigError(KEY, f"{uri!r} is not a tracking URI MLflow knows (scheme {urlparse(uri).scheme!r}); use "
                               "sqlite:///path/mlflow.db, http://host:port or postgresql+psycopg2://...")
    if scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in ("http", "https"):
        _check_server(uri)
    elif scheme in ("postgresql", "mysql", "mssql"):
        _check_database(uri)


def _scheme(uri: str) -> str:
    return urlparse(uri).scheme.split("+")[0]


def sqlite_path(uri: str) -> Path | None:
    """The file behind a ``sqlite:///`` URI (None for an in-memory database)."""
    path = uri.split(":///", 1)[1].split("?", 1)[0] if ":///" in uri else ""
    return None if path in ("", ":memory:") else Path(path)


def _check_sqlite(uri: str) -> None:
    """The store's file must be writable, or creatable where it does not exist yet."""
    path = sqlite_path(uri)
    if path is None:
        return
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
            raise ConfigError(KEY, f"the store {path} is not writable by this user")
        return
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(KEY, f"cannot create the store {path}: {error.strerror or error} in {folder}") from None


def _prepare_sqlite(path: Path, uri: str) -> None:
    """Build a new store aside and link it into place; rebuild a half-made one that holds no runs.

    A half-made store that is still changing is being built in place by someone else (``mlflow ui`` or
    another MLflow client started at the same moment): wait for it, since replacing it would leave that
    process writing to a file no one else can see.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.parent):
            while not (path.exists() and _complete(path)):
                if not path.exists():
                    _build(path, over=False)
                elif _holds_runs(path):
                    raise ConfigError(KEY, f"{path} is an MLflow store with an older or damaged schema; back it "
                                           f"up and run `mlflow db upgrade {uri}`")
                elif _idle_s(path) >= QUIET_S:
                    _build(path, over=True)
                else:
                    time.sleep(POLL_S)
    except OSError as error:
        raise ConfigError(KEY, f"cannot create or open the store {path}: {error.strerror or error}") from None
    except sqlite3.DatabaseError as error:
        raise ConfigError(KEY, f"{path} is not an SQLite database ({error}); point tracking.uri elsewhere") from None


def _idle_s(path: Path) -> float:
    """Seconds since the store or its journal last changed."""
    files = [path, path.with_name(f"{path.name}-journal"), path.with_name(f"{path.name}-wal")]
    return time.time() - max(file.stat().st_mtime for file in files if file.exists())


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the store's folder, so two processes never build or repair it at once."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _build(path: Path, over: bool) -> None:
    """Create MLflow's schema in a temporary file, then put the finished store at ``path``: over the
    half-made store there if ``over``, else only if nothing has appeared there meanwhile."""
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine

    for leftover in path.parent.glob(f".{path.name}.*.building"):
        if time.time() - leftover.stat().st_mtime > STALE_BUILD_S:
            leftover.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.building")
    quiet = logging.getLogger("mlflow.store.db.utils")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    engine = create_sqlalchemy_engine(f"sqlite:///{temporary}")
    try:
        _initialize_tables(engine)
        engine.dispose()
        with contextlib.closing(sqlite3.connect(temporary)) as db:  # kept in the file: every later connection
            db.execute("PRAGMA journal_mode=WAL")  # commits without rewriting pages, readers never wait on a writer
        if over:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):  # made in place meanwhile: the caller looks again
                os.link(temporary, path)
    finally:
        engine.dispose()
        quiet.setLevel(level)
        temporary.unlink(missing_ok=True)


def _complete(path: Path) -> bool:
    """Whether every table MLflow expects exists and the schema is at MLflow's current revision."""
    from mlflow.store.db.base_sql_model import Base
    from mlflow.store.db.utils import _get_latest_schema_revision

    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" not in tables or not set(Base.metadata.tables) <= tables:
            return False
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return revision is not None and revision[0] == _get_latest_schema_revision()


def _holds_runs(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
        except sqlite3.OperationalError:  # no runs table yet
            return False


def _check_server(uri: str) -> None:
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACH_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered: a server that has no health page (a proxy, a hosted service)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(KEY, f"cannot reach the tracking server at {uri} ({reason}); start one with "
                               "`python -m hpo_tune.server` or point tracking.uri elsewhere") from None


def _check_database(uri: str) -> None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args=_timeout_args(uri))
    except (ImportError, sqlalchemy.exc.ArgumentError) as error:
        raise ConfigError(KEY, f"cannot use {uri}: {error} (for PostgreSQL: pip install psycopg2-binary)") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise ConfigError(KEY, f"cannot connect to the database at {uri}: {reason}") from None
    finally:
        engine.dispose()


def _timeout_args(uri: str) -> dict[str, int]:
    return {"connect_timeout": int(REACH_TIMEOUT_S)} if uri.startswith(("postgresql", "mysql")) else {}
