"""What a strategy sees of a study: its trials, as read back from the tracking store."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_tune.space import Params


class TrialState(enum.Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"


@dataclass(frozen=True)
class Trial:
    """One attempt at a parameter set. ``number`` orders trials in the study and seeds them.

    ``curve`` holds the objective metric per epoch of a finished trial (for pruners); ``rungs`` the values it
    recorded at the rungs of a multi-fidelity pruner (``hpo_tune.pruning.halving``), and ``paused`` says it
    waits at its last rung, checkpointed, for a promotion (state PRUNED until then). A study of several
    objectives gives a complete trial its ``values`` in the study's order, and ``value`` is the first of them.
    """

    number: int
    params: Params
    state: TrialState
    value: float | None = None
    run_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    curve: Mapping[int, float] = field(default_factory=dict)
    rungs: Mapping[int, float] = field(default_factory=dict)
    paused: bool = False
    values: tuple[float, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state is not TrialState.RUNNING


@dataclass(frozen=True)
class Proposal:
    """A parameter set a strategy wants run; ``tags`` are recorded on the trial (e.g. its stage)."""

    params: Params
    tags: Mapping[str, str] = field(default_factory=dict)


class Direction(enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a < b if self is Direction.MINIMIZE else a > b

    def loss(self, value: float) -> float:
        """The value turned into something to minimise, so strategies need one code path."""
        return value if self is Direction.MINIMIZE else -value


def trial_seed(study_seed: int, number: int) -> int:
    """A trial's training seed: fixed by the study seed and the trial number, distinct per trial."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1)[0])


class TrialPruned(Exception):
    """Raised by a trial's report callback when its learning curve is not worth finishing."""


class TrialPaused(Exception):
    """Raised by a trial's report callback at a rung where a promote-mode pruner pauses it (checkpointed)."""

    def __init__(self, epoch: int, state: Any = None):
        super().__init__(f"paused at epoch {epoch} until a promotion")
        self.epoch, self.state = epoch, state


@dataclass(frozen=True)
class Checkpoint:
    """What a paused trial left: the epoch it reached and the state its objective gave to ``report``."""

    epoch: int
    state: Any


@dataclass(frozen=True)
class Resume:
    """Where a trial goes on from: past epoch ``epoch``, from the state saved there, if any.

    A promoted trial (paused at rung ``epoch``) reopens its own run (``run_id`` None); a trial whose worker died
    runs again in a new run from the last state its dead attempt saved (``checkpoint_every``), kept in that
    attempt's run ``run_id``.
    """

    epoch: int
    curve: Mapping[int, float]  # what it reported up to ``epoch``, so its run keeps one whole curve
    rungs: Mapping[int, float]
    run_id: str | None = None


class TrialTimeout(Exception):
    """Raised inside a trial that ran past its time limit, by whichever executor runs it."""


def best_trial(trials: list[Trial], direction: Direction) -> Trial | None:
    """The complete trial with the best value; the earliest wins a tie, so the answer is stable."""
    best = None
    for trial in trials:
        if trial.state is TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value):
            if best is None or direction.better(trial.value, best.value):
                best = trial
    return best


@dataclass
class TrialContext:
    """What an objective gets beside its parameters: who it is, where to run, and where to report.

    ``report(epoch, metrics, checkpoint=None)`` logs a learning-curve point, and raises ``TrialPruned`` (or
    ``TrialPaused``) when the study's pruner stops the trial there; ``checkpoint`` is a callable returning
    the state to resume from (a dict of state_dicts, say), called when a promote-mode pruner pauses
    the trial and every ``checkpoint_every`` epochs. ``restore()`` gives a promoted trial, or one run again
    after its worker died, that ``Checkpoint`` back (None for a fresh start): train from ``checkpoint.epoch + 1``.
    ``log_artifacts({path: text or bytes})`` attaches files to the trial's run; ``keep_model(model,
    input_example)`` offers the trained torch model (logged as an MLflow model if the study keeps this trial's
    model: ``log_models``);
    ``tags`` are what the strategy attached to the proposal; ``run_id`` is the trial's MLflow run.
    """

    number: int
    seed: int
    device: str
    report: Callable[..., None]
    log_artifacts: Callable[[Mapping[str, str | bytes]], None]
    tags: Mapping[str, str] = field(default_factory=dict)
    keep_model: Callable[[Any, Any], None] = lambda model, input_example: None
    restore: Callable[[], Checkpoint | None] = lambda: None
    run_id: str = ""


CURRENT_TRIAL: ContextVar[TrialContext | None] = ContextVar("hpo_tune_trial", default=None)  # set by run_trial


def current_trial() -> TrialContext | None:
    """The trial the calling code runs in (None outside a study), for code that is not handed one: a Hydra task
    tuned by ``hydra/sweeper=hpo``, or a helper deep inside an objective."""
    return CURRENT_TRIAL.get()
