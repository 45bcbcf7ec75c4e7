"""Start an MLflow tracking server for parallel workers, several studies or a team.

    python -m hpo_tune.server                                   # SQLite in ./mlflow-server.db, 127.0.0.1:5000
    python -m hpo_tune.server --backend postgresql+psycopg2://user:pw@db/mlflow --host 0.0.0.0 --port 5000
    python -m hpo_tune.server --postgres                        # a throwaway local PostgreSQL, to try it out

Then ``python -m src.tune ... tracking=server`` (or ``tracking.uri=http://host:port``). One file of
SQLite serves one machine well (the server serialises its writes); a team sharing a server across
machines wants PostgreSQL (``pip install -e '.[postgres]'`` installs psycopg2; name it in the URI as
above, since SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3). The server binds to 127.0.0.1
unless told otherwise: MLflow has no authentication by default, so expose it only on a trusted network.
Artifacts (configs, plots, tables) are proxied by the server and stored under ``--artifacts``.

``--postgres`` (and ``local_postgres``, which the tests use) runs Debian's PostgreSQL binaries on a
temporary data folder, on 127.0.0.1 and a free port; the runs are gone when it stops.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from hpo_tune.resolvers import IMPORT_ROOT

DEFAULT_BACKEND = "sqlite:///mlflow-server.db"
APP = "hpo_tune.tracking.server_app:create_app"
SERVED_ARTIFACTS = "mlflow-artifacts:/"  # runs' artifact root: proxied by the server to its artifacts folder
JOBS_SWITCH = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")  # Debian keeps the server binaries here, one folder per version
POSTGRES_PROGRAMS = ("initdb", "pg_ctl", "postgres")
Owner = tuple[int, int]  # uid, gid


def command(backend: str, host: str, port: int, artifacts: str, workers: int = 1, plain: bool = False) -> list[str]:
    """The server's command line: uvicorn serving the project's app (MLflow's, plus the one-request trial
    routes of ``hpo_tune.tracking.server_app``), or if ``plain`` (as with MLflow's job runner, which only MLflow's
    launcher starts) ``mlflow server``, on which trials take MLflow's REST calls, a request per write."""
    if plain:
        return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--host", host,
                "--port", str(port), "--artifacts-destination", artifacts, "--workers", str(workers)]
    return [sys.executable, "-m", "uvicorn", "--factory", APP, "--host", host, "--port", str(port),
            "--workers", str(workers), "--log-level", "warning"]


def prepare(backend: str) -> None:
    """Check the backend, and make a new SQLite store the project's way (whole, in WAL mode: commits that
    append to the log rather than rewrite pages) before the server opens it; other databases get MLflow's
    tables here, before the server's workers start."""
    from hpo_tune.tracking.store import connect

    connect(backend)
    if not backend.startswith("sqlite"):
        from mlflow.server.handlers import initialize_backend_stores

        initialize_backend_stores(backend, backend, SERVED_ARTIFACTS)


def server_env(backend: str, artifacts: str, jobs: bool = False) -> dict[str, str]:
    """The server's environment: where its runs and artifacts go (what ``mlflow server`` passes its workers),
    and no MLflow job runner unless ``jobs`` (or the caller's environment says so). The runner serves GenAI
    features (evaluation jobs, trace roll-ups) a tuning study does not use, with eight processes that poll
    all the time: on 2 cores every request then took 25-80 ms instead of 2 ms (``/health``, with curl)."""
    from mlflow.server import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )

    env = dict(os.environ)
    env.setdefault(JOBS_SWITCH, "true" if jobs else "false")
    env |= {BACKEND_STORE_URI_ENV_VAR: backend, REGISTRY_STORE_URI_ENV_VAR: backend,
            ARTIFACT_ROOT_ENV_VAR: SERVED_ARTIFACTS, SERVE_ARTIFACTS_ENV_VAR: "true",
            ARTIFACTS_DESTINATION_ENV_VAR: artifacts, "_MLFLOW_SGI_NAME": "uvicorn",
            "PYTHONPATH": os.pathsep.join([str(IMPORT_ROOT), *filter(None, [env.get("PYTHONPATH")])])}
    return env


def jobs_wanted(env: Mapping[str, str]) -> bool:
    return env.get(JOBS_SWITCH, "").lower() in ("true", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(uri: str, process: subprocess.Popen, timeout_s: float = 90) -> None:
    """Block until the server answers its health check; raise if it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server at {uri} did not answer within {timeout_s} s") from None
            time.sleep(0.5)


@contextmanager
def local_server(folder: Path, port: int | None = None, backend: str | None = None, plain: bool = False
                 ) -> Iterator[str]:
    """A throwaway server on 127.0.0.1 with its artifacts (and, unless ``backend`` says otherwise, its SQLite
    store) in ``folder``; yields its URI. ``plain``: MLflow's server, without the project's trial routes."""
    port = port or free_port()
    backend = backend or f"sqlite:///{folder / 'server.db'}"
    prepare(backend)
    artifacts = str(folder / "artifacts")
    env = server_env(backend, artifacts)
    line = command(backend, "127.0.0.1", port, artifacts, plain=plain or jobs_wanted(env))
    process = subprocess.Popen(line, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(uri, process)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


def postgres_bin() -> Path:
    """The folder holding initdb, pg_ctl and postgres: PATH's, else Debian's newest version (not on PATH there)."""
    on_path = shutil.which("initdb")
    debian = sorted(DEBIAN_POSTGRES.glob("*/bin"), reverse=True,
                    key=lambda folder: [int(part) for part in folder.parent.name.split(".") if part.isdigit()])
    for folder in ([Path(on_path).resolve().parent] if on_path else []) + debian:
        if all((folder / program).is_file() for program in POSTGRES_PROGRAMS):
            return folder
    raise RuntimeError(f"no PostgreSQL server binaries ({', '.join(POSTGRES_PROGRAMS)}) on PATH or under "
                       f"{DEBIAN_POSTGRES}/*/bin: install Debian's `postgresql` package")


def postgres_owner() -> Owner | None:
    """Who PostgreSQL must run as: it refuses root, so root hands it to the ``postgres`` user; others run it."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root, and there is no `postgres` user to run PostgreSQL as") from None
    return user.pw_uid, user.pw_gid


def as_owner(owner: Owner | None) -> dict[str, object]:
    """subprocess arguments that run a program as ``owner`` (with none of root's groups), or as ourselves."""
    return {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}


def run_postgres_program(args: list[str], cwd: Path, owner: Owner | None, stdin: str | None = None,
                         log: Path | None = None) -> None:
    """Run initdb, pg_ctl or postgres as ``owner``; raise RuntimeError with its output (and the server log) if it
    fails. Single-user mode exits 0 after a failed statement, so an ``ERROR:`` in its output counts as failing."""
    done = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, **as_owner(owner))
    if done.returncode != 0 or "ERROR:" in done.stderr:
        output = done.stdout + done.stderr + (log.read_text(errors="replace") if log and log.is_file() else "")
        raise RuntimeError(f"`{' '.join(args)}` failed with code {done.returncode}: {output.strip()[-2000:]}")


def configure_postgres(data: Path, port: int) -> None:
    """Listen on 127.0.0.1 only, at ``port``, with the unix socket in the data folder (not the shared
    /var/run/postgresql, which may not exist or belong to a system cluster)."""
    settings = {"listen_addresses": "127.0.0.1", "port": port, "unix_socket_directories": str(data)}
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n# local_postgres\n")
        for name, value in settings.items():
            quoted = str(value).replace("'", "''")
            conf.write(f"{name} = '{quoted}'\n")


@contextmanager
def local_postgres(folder: Path) -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 with an empty database ``mlflow``; yields its SQLAlchemy URI.

    The URI names the psycopg2 driver: SQLAlchemy 2.1 takes a bare ``postgresql://`` to mean psycopg 3.

    Its data and log go in ``folder``, except as root: PostgreSQL then runs as the ``postgres`` user, who may not
    reach ``folder`` (pytest's are 0700 root), so they go in a folder of its own under /tmp, removed afterwards.
    Raises RuntimeError, saying why, when the binaries are missing or the server does not start.
    """
    bin_dir, owner = postgres_bin(), postgres_owner()
    work = Path(tempfile.mkdtemp(prefix="local-postgres-", dir="/tmp")) if owner else folder
    try:
        work.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(work, *owner)
        data, log, port = work / "data", work / "postgres.log", free_port()
        run_postgres_program([str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                              "--locale=C", "--encoding=UTF8", "--no-sync"], work, owner)
        configure_postgres(data, port)
        run_postgres_program([str(bin_dir / "postgres"), "--single", "-D", str(data), "postgres"], work, owner,
                             stdin="CREATE DATABASE mlflow;\n")
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
        try:
            run_postgres_program([*pg_ctl, "start", "-l", str(log)], work, owner, log=log)
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
        finally:
            subprocess.run([*pg_ctl, "stop", "-m", "fast"], cwd=work, capture_output=True, timeout=120,
                           **as_owner(owner))  # not checked: after a failed start there is nothing to stop
    finally:
        if owner:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--backend", default=DEFAULT_BACKEND, help="SQLAlchemy URI of the run store")
    backend.add_argument("--postgres", action="store_true",
                         help="store the runs in a throwaway local PostgreSQL (gone when the server stops)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--artifacts", help="where artifacts are kept (default ./mlartifacts; with --postgres, in "
                                             "its temporary folder, deleted with the runs)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (more serve more clients, but each kept-alive request gets slower)")
    parser.add_argument("--jobs", action="store_true",
                        help=f"run MLflow's job runner (GenAI evaluation jobs, trace roll-ups: eight polling processes "
                             f"that slow every request on a small machine); off unless given or {JOBS_SWITCH} is set")
    args = parser.parse_args()
    with ExitStack() as stack:
        artifacts = Path("mlartifacts")
        if args.postgres:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-postgres-")))
            args.backend = stack.enter_context(local_postgres(folder))
            artifacts = folder / "artifacts"
        prepare(args.backend)
        kept = str(Path(args.artifacts or artifacts).resolve())
        env = server_env(args.backend, kept, args.jobs)
        line = command(args.backend, args.host, args.port, kept, args.workers, jobs_wanted(env))
        print(f"tracking URI: http://{args.host}:{args.port}   (runs in {args.backend}; {' '.join(line[1:])})",
              flush=True)
        code = subprocess.call(line, env=env)
    sys.exit(code)


if __name__ == "__main__":
    main()
