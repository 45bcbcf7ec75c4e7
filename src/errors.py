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


class StudyConflictError(ValueError):
    """A study of that name exists with a different configuration, so resuming it would mix trials."""

    exit_code = 2
