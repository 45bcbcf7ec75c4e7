"""What a newcomer meets first on the command line: help, budgets too small to mean anything, typos in keys
(their one-line errors are checked in-process in tests/test_study_config.py, through the CLI's own path)."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from hpo_tune.config import accepted_keys
from hpo_tune.errors import ConfigError
from hpo_tune.space import SearchSpace
from hpo_tune.strategies import make_strategy
from hpo_tune.trial import Direction
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("mnist_available")


def compose_config(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", list(overrides))


def one_line_exit_2(done):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_compare_help_says_what_it_does_and_how_to_call_it(flag):
    done = subprocess.run([sys.executable, "-m", "hpo_tune.compare", flag], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("usage: python -m hpo_tune.compare experiment=<preset>")
    assert "python -m hpo_tune.compare experiment=seed001_mnist scale=smoke" in done.stdout  # an example
    assert "reports/<preset>/<preset>.md" in done.stdout  # where the report goes
    for preset in ROOT.joinpath("conf", "experiment").glob("*.yaml"):
        assert preset.stem in done.stdout


def test_the_budget_chooses_a_fraction_that_fits_or_suggests_one():
    three = SearchSpace.from_config({n: {"type": "float", "low": 0.0, "high": 1.0} for n in "abc"})
    five = SearchSpace.from_config({n: {"type": "float", "low": 0.0, "high": 1.0} for n in "abcde"})
    def factorial(space, n_trials, **options):
        return make_strategy("factorial_grid", space, 0, Direction.MINIMIZE, options, n_trials=n_trials)

    assert factorial(three, 35).budget_note is None  # all of it fits
    with pytest.raises(ConfigError, match="at least 10") as error:  # the design, and a grid of at least 2
        factorial(three, 9)
    assert error.value.key == "n_trials" and "strategy.fraction=0 to run it anyway (1 left" in str(error.value)
    assert "the 2^(5-2) resolution III fraction (8 runs), 2 left for the grid" in factorial(five, 10).budget_note
    with pytest.raises(ConfigError, match=r"at least 34, or set strategy.fraction=auto \(the 2\^\(5-2\) resolution "
                                          r"III fraction, 18 runs\)"):
        factorial(five, 30, fraction=1, center_points=2, replicates=2)
    make_strategy("random", five, 0, Direction.MINIMIZE, n_trials=1)  # other strategies take any budget


def test_every_key_of_the_shipped_datasets_and_models_is_accepted():
    """The presets are checked in test_pipeline (every variant at both scales); these are the groups' own files."""
    for group in ("dataset", "model"):
        for option in ROOT.joinpath("conf", group).glob("*.yaml"):
            cfg = compose_config(f"{group}={option.stem}")
            assert set(cfg[group]) <= accepted_keys(cfg)[group], option


def test_checking_a_config_loads_no_mlflow_and_torch_only_for_the_keys_nothing_reads():
    """Why config mistakes come back in seconds: every check but the last runs before torch loads, and the last
    (the keys nothing reads, found in the training code's signatures) before MLflow loads."""
    script = ("import sys, hpo_tune.resolvers; from hydra import compose, initialize_config_dir\n"
              "from hpo_tune.config import study_config\nfrom hpo_tune.errors import ConfigError\n"
              f"with initialize_config_dir(config_dir={str(ROOT / 'conf')!r}, version_base='1.3'):\n"
              "    try:\n"
              "        study_config(compose('config', ['experiment=seed002_dogs', 'heartbeat.interval_s=0']))\n"
              "    except ConfigError as error:\n"
              "        print(error.key, sorted({'torch', 'mlflow'} & set(sys.modules)))\n"
              "    study_config(compose('config', ['experiment=seed002_dogs']))\n"
              "print(sorted({'torch', 'mlflow'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["heartbeat.interval_s []", "['torch']"]
