"""Start an MLflow tracking server for parallel workers, several studies or a team.

    python -m src.server                                   # SQLite in ./mlflow-server.db, 127.0.0.1:5000
    python -m src.server --backend postgresql://user:pw@db/mlflow --host 0.0.0.0 --port 5000

Then ``python -m src.tune ... tracking=server`` (or ``tracking.uri=http://host:port``). One file of
SQLite serves one machine well (the server serialises its writes); a team sharing a server across
machines wants PostgreSQL (``pip install psycopg2-binary``). The server binds to 127.0.0.1 unless
told otherwise: MLflow has no authentication by default, so expose it only on a trusted network.
Artifacts (configs, plots, tables) are proxied by the server and stored under ``--artifacts``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_BACKEND = "sqlite:///mlflow-server.db"


def command(backend: str, host: str, port: int, artifacts: str, workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line this module runs."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--host", host,
            "--port", str(port), "--artifacts-destination", artifacts, "--workers", str(workers)]


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
def local_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """A throwaway server on 127.0.0.1 with its SQLite store and artifacts in ``folder``; yields its URI."""
    port = port or free_port()
    process = subprocess.Popen(command(f"sqlite:///{folder / 'server.db'}", "127.0.0.1", port,
                                       str(folder / "artifacts")),
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(uri, process)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help="SQLAlchemy URI of the run store")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--artifacts", default=str(Path("mlartifacts").resolve()), help="where artifacts are kept")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes (more serve more clients, but each kept-alive request gets slower)")
    args = parser.parse_args()
    line = command(args.backend, args.host, args.port, args.artifacts, args.workers)
    print(f"tracking URI: http://{args.host}:{args.port}   ({' '.join(line[1:])})", flush=True)
    sys.exit(subprocess.call(line))


if __name__ == "__main__":
    main()
