"""What the command lines share: user mistakes become one line on stderr and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from hpo_tune.errors import (
    ConfigError,
    DataMissingError,
    NoTrialCompletedError,
    StudiesFailedError,
    StudyConflictError,
    Terminated,
)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Config mistakes exit 2, missing data or no completed trial 1, Ctrl-C 130, SIGTERM 143; anything
    else keeps its traceback."""
    try:
        yield
    except (ConfigError, DataMissingError, NoTrialCompletedError, StudiesFailedError, StudyConflictError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except (MissingConfigException, ConfigCompositionException, OverrideParseException) as error:
        print(f"error: {hydra_message(error)}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print("terminated: re-run the same command to resume the study", file=sys.stderr)
        sys.exit(Terminated.exit_code)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume the study", file=sys.stderr)
        sys.exit(130)


def hydra_message(error: Exception) -> str:
    """Hydra's multi-line errors as one line that names the offending key or option."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return f"{group}={option}: no such option (available: {', '.join(sorted(error.options))})"
    if isinstance(error, OverrideParseException):
        return f"{error.override}: cannot parse this override ({error.message.splitlines()[0]})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    head = lines[0] if lines else repr(error)
    if error.__cause__ is not None and str(error.__cause__).strip():
        head += f" {str(error.__cause__).strip().splitlines()[0]}"
    hint = next((line for line in lines if line.startswith("To append")), None)
    return f"{head} ({hint[0].lower()}{hint[1:]})" if hint else head
