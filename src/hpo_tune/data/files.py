"""Reading DVC-tracked files and writing derived ones so that damage gives one line and leaves no debris.

``reading`` turns what a cut or corrupt file raises while it is decoded (``EOFError``, ``zlib.error``: errors
that name no file) into a ``DataDamagedError`` that names the file and the fix. ``partial`` writes a derived file
or folder under a temporary name that is renamed into place only once it is complete, and removed otherwise, so a
failed decode leaves the cache as it was.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hpo_tune.errors import DataDamagedError
from hpo_tune.resolvers import PROJECT_ROOT

Errors = tuple[type[Exception], ...]

# What a cut or corrupt gzip stream or tar archive raises. BadGzipFile is the only OSError among them, so a disk
# that cannot be read or is full is not taken for a damaged file.
COMPRESSED_ERRORS: Errors = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError)


def damaged(path: Path, problem: str) -> DataDamagedError:
    """The error for ``path``, on disk but unreadable because of ``problem``: one line with the fix."""
    return DataDamagedError(f"{shown(path)} is damaged ({problem}): run `dvc pull --force` to restore it")


@contextmanager
def reading(path: Path, errors: Errors = COMPRESSED_ERRORS, member: str | None = None) -> Iterator[None]:
    """Re-raises ``errors`` from the block as ``damaged(path)``, naming ``member`` (of an archive) if given."""
    try:
        yield
    except errors as error:
        raise damaged(path, f"{member}: {described(error)}" if member else described(error)) from error


@contextmanager
def partial(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write a file or folder to, renamed onto ``target`` if the block succeeds.

    It is removed whatever happens, so a failure leaves nothing half-written. Its name is unique, so concurrent
    writers never share one; if another writer has put its folder in place first (a folder is not replaced), that
    one stays.
    """
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        yield temporary
        try:
            temporary.replace(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def shown(path: Path) -> str:
    """``path`` relative to the project root when it lies under it (``data/mnist/...``), else absolute."""
    path = Path(path).absolute()
    return str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)


def described(error: Exception) -> str:
    """``Type: message`` on one line (tarfile's and pandas' messages span several); the type as it is imported."""
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = " ".join(str(error).split())
    return f"{name}: {text}" if text else name
