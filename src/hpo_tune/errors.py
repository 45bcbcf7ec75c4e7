"""Errors a user can act on; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is invalid; ``key`` is its dotted path so the message can name it."""

    exit_code = 2

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


class DataMissingError(FileNotFoundError):
    """A dataset is not on disk; the message says how to get it."""

    exit_code = 1


class DataDamagedError(DataMissingError):
    """A dataset file is on disk but unreadable (truncated, corrupt).

    The message names the file and says to restore it with ``dvc pull --force`` (without ``--force`` DVC asks before
    replacing a file that differs from its copy). A ``DataMissingError``, so the CLI reports it the same way: one
    line, exit 1.
    """


class StudyConflictError(ValueError):
    """A study of that name exists with a different configuration, so resuming it would mix trials."""

    exit_code = 2


class StudiesFailedError(RuntimeError):
    """Some studies of a comparison crashed; the others ran and the report lists the failures."""

    exit_code = 1

    def __init__(self, failures: dict[str, str]):
        super().__init__(f"{len(failures)} studies failed (see the report): "
                         + "; ".join(f"{study}: {error}" for study, error in failures.items()))
        self.failures = failures


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM: handled as Ctrl-C is (the trial is interrupted, the CLI exits 143)."""

    exit_code = 143


class NoTrialCompletedError(RuntimeError):
    """A study ended without one completed trial: there is no best trial to report."""

    exit_code = 1
