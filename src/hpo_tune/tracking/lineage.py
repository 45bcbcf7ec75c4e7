"""Which code and which data made a run: git and DVC, recorded where MLflow's UI shows them.

Code: the tags ``mlflow.start_run`` would set (``mlflow.source.name``, ``.type``, ``.git.commit``,
``mlflow.user``), taken from MLflow's own run-context providers, plus ``code.dirty`` saying whether
the git tree had uncommitted changes to tracked files.

Data: the dataset as DVC versions it. Its digest is the MD5 of the entries (path and MD5 of each
file) that the ``.dvc`` file tracking it records for its folder, so it changes exactly when ``dvc
add`` records new contents, and runs can be searched by it (``datasets.digest = '...'``). Each trial
logs one MLflow dataset input per split (``<name>.training``, ``.validation``, ``.test``, with
that context), since MLflow keeps one context per dataset and run. A folder no ``.dvc`` file
tracks is hashed from its files' contents instead.
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.entities import Dataset, DatasetInput, InputTag

from hpo_tune.resolvers import PROJECT_ROOT

SOURCE_TAGS = ("mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit", "mlflow.source.git.branch",
               "mlflow.source.git.repoURL", "mlflow.user")
DIRTY = "code.dirty"
CONTEXT = "mlflow.data.context"


@functools.cache
def code_tags() -> dict[str, str]:
    """This process's code lineage (computed once: git costs a few tens of milliseconds)."""
    from mlflow.tracking.context.registry import resolve_tags

    tags = {k: str(v) for k, v in resolve_tags().items() if k in SOURCE_TAGS}
    entry = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] not in ("", "-c", "-") else PROJECT_ROOT
    repo = _git(entry, "rev-parse", "--show-toplevel") or _git(PROJECT_ROOT, "rev-parse", "--show-toplevel")
    if repo:
        tags.setdefault("mlflow.source.git.commit", _git(Path(repo), "rev-parse", "HEAD"))
        tags[DIRTY] = "true" if _git(Path(repo), "status", "--porcelain", "--untracked-files=no") else "false"
    return tags


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


@dataclass(frozen=True)
class DataVersion:
    """A dataset's version and its splits: what every trial of a study logs as its dataset inputs."""

    name: str
    digest: str
    source: str  # JSON: the .dvc file, the folder, the DVC remote
    examples: Mapping[str, int]  # context (training, validation, test) -> number of examples

    def inputs(self) -> list[DatasetInput]:
        return [DatasetInput(Dataset(f"{self.name}.{context}", self.digest, "dvc", self.source,
                                     profile=json.dumps({"examples": count})), [InputTag(CONTEXT, context)])
                for context, count in self.examples.items() if count]


def data_version(name: str, folder: Path, examples: Mapping[str, int]) -> DataVersion:
    """``folder``'s version as the ``.dvc`` file that tracks it records it, or from its contents."""
    folder = folder.resolve()
    tracked = _tracked_by(folder)
    if tracked is not None:
        dvc_file, out, entries = tracked
        prefix = folder.relative_to(out).as_posix()
        mine = sorted((e["relpath"], e["md5"]) for e in entries if prefix in (".", "") or
                      e["relpath"].startswith(f"{prefix}/"))
        if mine:
            source = {"dvc_file": _shown(dvc_file), "path": _shown(folder), "remote": _remote(dvc_file.parent)}
            return DataVersion(name, _md5(json.dumps(mine)), json.dumps(source), dict(examples))
    return DataVersion(name, _contents_md5(folder), json.dumps({"path": _shown(folder)}), dict(examples))


def _tracked_by(folder: Path) -> tuple[Path, Path, list[dict]] | None:
    """(the .dvc file, the folder it tracks, its entries) for the nearest .dvc file tracking ``folder``."""
    for out in (folder, *folder.parents):
        dvc_file = out.parent / f"{out.name}.dvc"
        if not dvc_file.is_file():
            continue
        try:
            digest = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
            return None
        repo = next((p for p in dvc_file.parents if (p / ".dvc").is_dir()), None)
        manifest = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:] if repo else None
        try:
            return dvc_file, out, json.loads(manifest.read_text()) if manifest else []
        except (OSError, ValueError):
            return None
    return None


def _remote(repo: Path) -> str:
    """The default DVC remote, as ``name: url`` (what ``dvc pull`` fetches from)."""
    config = configparser.ConfigParser()
    config.read(repo / ".dvc" / "config")
    name = config.get("core", "remote", fallback="")
    url = config.get(f"'remote \"{name}\"'", "url", fallback="") if name else ""
    return f"{name}: {url}" if name else ""


@functools.cache
def _contents_md5(folder: Path) -> str:
    entries = sorted((p.relative_to(folder).as_posix(), _file_md5(p)) for p in folder.rglob("*") if p.is_file())
    return _md5(json.dumps(entries))


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _shown(path: Path) -> str:
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)
