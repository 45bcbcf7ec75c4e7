"""The trial time limit, shared by the job and every executor.

The limit counts the trial only: it starts when the objective is called, after the worker has
started, imported what it needs and run the objective's optional ``setup()`` (the CLI's objective
loads its data there). It is enforced twice: inside the trial, by an alarm that raises
``TrialTimeout`` (the trial fails cleanly, with its error recorded), and, for trials stuck where
Python cannot raise (native code holding the interpreter), by the process and Ray executors
killing the worker ``kill_grace_s`` later.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hpo_tune.errors import ConfigError
from hpo_tune.trial import TrialTimeout


def valid_timeout(seconds: float | None, key: str = "executor.trial_timeout") -> float | None:
    """``seconds`` itself, once checked: a limit of zero or less is a config error, not "no limit"."""
    if seconds is not None and not seconds > 0:
        raise ConfigError(key, f"must be a positive number of seconds or null, got {seconds!r}")
    return seconds


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``TrialTimeout`` inside the trial after ``seconds`` (main thread only: it uses SIGALRM)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TrialTimeout(f"the trial ran past its limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class PoolLimits:
    """A pool's worker count and time limits: the in-trial limit, and when to kill a worker whose
    trial ignored it (``kill_grace_s`` later)."""

    n_workers: int
    trial_timeout: float | None
    kill_grace_s: float

    def __post_init__(self) -> None:
        if self.n_workers < 1:
            raise ConfigError("executor.n_workers", f"must be >= 1, got {self.n_workers}")
        valid_timeout(self.trial_timeout)
        valid_timeout(self.kill_grace_s, "executor.kill_grace_s")

    def overran(self, started: float | None) -> bool:
        """Whether a trial started at ``started`` (monotonic; None: not yet) is past its limit and grace."""
        return (self.trial_timeout is not None and started is not None
                and time.monotonic() - started > self.trial_timeout + self.kill_grace_s)
