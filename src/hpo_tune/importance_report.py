"""A tracked study's parameter importance, put on its parent run: when the study ends, and on demand.

    python -m src.importance --study NAME [--experiment E] [--tracking-uri URI] [--evaluator ped_anova|fanova]

The parent run gets ``importance.csv`` (``param``, ``importance``, ``evaluator``; for a factorial study its OLS
main effects beside them, from the ``factorial/effects.csv`` its strategy logged) and ``importance.png``; the
command prints the table too. The history is read back from MLflow, the space and direction from what the parent
run recorded, so any finished (or interrupted) study of any strategy can be asked. At a study's end this never fails
the study: a history too short to rank (``hpo_tune.importance.Unavailable``) is one log line, anything else one
warning.
"""

from __future__ import annotations

import argparse
import ast
import io
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from hpo_tune.cli import cli_errors
from hpo_tune.errors import ConfigError
from hpo_tune.importance import EVALUATORS, Unavailable, beside_effects, importances
from hpo_tune.plots import importance_bars
from hpo_tune.space import SearchSpace
from hpo_tune.study_config import DEFAULT_TRACKING_URI
from hpo_tune.tracking.store import sqlite_path
from hpo_tune.trial import Direction, Trial

if TYPE_CHECKING:
    from hpo_tune.study_config import StudyConfig
    from hpo_tune.tracking import Tracker

_log = logging.getLogger(__name__)
EFFECTS = "factorial/effects.csv"  # where the factorial strategy logs its OLS effects table
TITLES = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA"}


def log_importance(tracker: Tracker, run_id: str, trials: Sequence[Trial], space: SearchSpace, direction: Direction,
                   evaluator: str = "ped_anova", seed: int = 0) -> pd.DataFrame:
    """Rank the study's parameters and attach the table and its plot to its parent run ``run_id``; returns the
    table. Raises ``Unavailable`` (nothing attached) when the history cannot rank them."""
    table = importances(trials, space, direction, evaluator, seed)
    effects = tracker.read_text(run_id, EFFECTS)
    if effects is not None:
        table = beside_effects(table, pd.read_csv(io.StringIO(effects)))
    tracker.attach(run_id, {"importance.csv": table.assign(evaluator=evaluator).to_csv(index=False),
                            "importance.png": importance_bars(table, f"{TITLES[evaluator]} parameter importance")})
    return table


def at_study_end(config: StudyConfig, run_id: str, trials: Sequence[Trial]) -> None:
    """Log a study's importance as it ends, by the evaluator ``config.importance`` names; never raises, since the
    study's result stands without it."""
    from hpo_tune.tracking import Tracker

    start = time.perf_counter()
    try:
        log_importance(Tracker(config.tracking_uri), run_id, trials, config.space, config.goal, config.importance,
                       config.seed)
    except Unavailable as reason:
        _log.info(f"parameter importance: none logged, {reason}")
    except Exception as error:  # noqa: BLE001 - an analysis of the study must not fail the study
        _log.warning(f"parameter importance: none logged, {type(error).__name__}: {error}")
    else:
        _log.info(f"parameter importance ({config.importance}): importance.csv and importance.png on the parent run "
                  f"({time.perf_counter() - start:.2f} s)")


def study_importance(tracking_uri: str, experiment: str, name: str,
                     evaluator: str = "ped_anova") -> tuple[str, pd.DataFrame]:
    """Read the study ``name`` back from MLflow and log its importance on its parent run; returns the run's id and
    the table. A store, experiment or study that does not exist is a ``ConfigError`` naming the option."""
    path = sqlite_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if path is not None and not path.exists():  # MLflow would create an empty store there
        raise ConfigError("--tracking-uri", f"no tracking store at {tracking_uri}")
    from hpo_tune.tracking import Tracker

    tracker = Tracker(tracking_uri)
    found = tracker.client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError("--experiment", f"no experiment {experiment!r} at {tracking_uri}")
    try:
        run_id = tracker.runs.existing(found.experiment_id, name).parent
    except LookupError:
        raise ConfigError("--study", f"no study {name!r} in experiment {experiment!r} at {tracking_uri}") from None
    run = tracker.client.get_run(run_id)
    space, direction = recorded_space(run.data.params), Direction(run.data.tags["direction"])
    trials = tracker.load_study(experiment, name, space, direction).history(full=True)
    seed = int(run.data.params.get("seed", 0))
    return run_id, log_importance(tracker, run_id, trials, space, direction, evaluator, seed)


def recorded_space(params: Mapping[str, str]) -> SearchSpace:
    """The search space a parent run recorded: its ``space.<name>.<field>`` and ``space.<name>.when.<parent>``
    params (``SearchSpace.describe`` flattened, each value the text of a Python literal)."""
    spec: dict[str, dict[str, object]] = {}
    for key in params:
        if key.startswith("space.") and key.endswith(".type"):
            prefix = key.removesuffix("type")
            fields = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
            spec[prefix[len("space."):-1]] = {field: value if field == "type" else _literal(value)
                                              for field, value in fields.items() if "." not in field}
            when = {field.removeprefix("when."): _literal(value) for field, value in fields.items()
                    if field.startswith("when.")}
            if when:
                spec[prefix[len("space."):-1]]["when"] = when
    return SearchSpace.from_config(spec)


def _literal(text: str) -> object:
    """The value whose ``str`` MLflow stored: a number, a bool, a tuple of choices; the text itself otherwise."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m src.importance",
        description="Rank a tracked study's parameters by importance (Optuna's evaluators on its history in MLflow), "
                    "log importance.csv and importance.png on its parent run and print the table.")
    parser.add_argument("--study", required=True, help="the study's name (its parent run)")
    parser.add_argument("--experiment", default="hpo", help="its MLflow experiment (default: hpo, the Python API's; "
                                                             "the CLI's is the dataset's name)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"the tracking store (default: {DEFAULT_TRACKING_URI})")
    parser.add_argument("--evaluator", choices=list(EVALUATORS), default="ped_anova",
                        help="PED-ANOVA (default: fast, which parameters the best trials concentrate in) or fANOVA "
                             "(a random forest's variance decomposition)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with cli_errors():
        try:
            run_id, table = study_importance(args.tracking_uri, args.experiment, args.study, args.evaluator)
        except Unavailable as reason:
            print(f"error: study {args.study!r}: no importance, {reason}", file=sys.stderr)
            sys.exit(1)
    print(f"parameter importance of study {args.study!r} ({TITLES[args.evaluator]}), logged on its parent run "
          f"{run_id}:\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
