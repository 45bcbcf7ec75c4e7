"""What a user hits when something is wrong: a device, a store, a changed setting, a study that never
completes a trial, failed trials worth running again. Each is one line and an exit code, at once."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.errors import StudyConflictError
from hpo_tune.server import free_port
from hpo_tune.trial import TrialState
from hpo_tune.tune import run
from tests.conftest import TINY, children, cli

pytestmark = pytest.mark.usefixtures("mnist_available")


def one_line(done, code: int, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1, done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_on_a_machine_without_a_gpu_is_refused_before_anything_runs(tmp_path):
    store = tmp_path / "mlflow.db"
    one_line(cli(*TINY, "device=cuda", f"tracking.uri=sqlite:///{store}"), 2, "device", "cuda", "device=cpu")
    assert not store.exists()


@pytest.mark.parametrize(("uri", "words"), [
    ("not-a-uri://x", ("tracking.uri", "not-a-uri")),
    ("sqlite:////proc/hpo/mlflow.db", ("tracking.uri", "/proc/hpo/mlflow.db")),
    ("http://127.0.0.1:{port}", ("tracking.uri", "cannot reach the tracking server")),
])
def test_a_store_that_cannot_be_used_is_one_line_exit_2(uri, words):
    one_line(cli(*TINY, f"tracking.uri={uri.format(port=free_port())}"), 2, *words)


def test_a_study_in_which_no_trial_completed_exits_1_naming_the_commonest_error(tmp_path):
    diverging = ["space.trainer.lr.low=1e8", "space.trainer.lr.high=1e9", "n_trials=2"]
    done = cli(*TINY, *diverging, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    one_line(done, 1, "no trial", "completed", "2 of 2", "FloatingPointError")


def test_every_objective_setting_is_part_of_the_study(make_config):
    run(make_config("n_trials=1"))
    with pytest.raises(StudyConflictError, match=r"objective.kappa.lam \(0.5 -> 0.3\)"):
        run(make_config("n_trials=1", "objective.kappa.lam=0.3"))


def test_retry_failed_runs_the_failed_trials_again_with_their_parameters(store, study_name):
    broken = {"on": True}

    def objective(params, trial):
        if broken["on"] and trial.number in (1, 3):
            raise RuntimeError("CUDA error: no kernel image is available")
        return params["x"]

    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    kwargs = dict(n_trials=4, study=study_name, tracking_uri=store, progress=False)
    first = optimize(objective, space, **kwargs)
    assert [t.state for t in first.trials].count(TrialState.FAILED) == 2
    assert first.errors == {"RuntimeError: CUDA error: no kernel image is available": 2}
    broken["on"] = False
    assert [t.state for t in optimize(objective, space, **kwargs).trials].count(TrialState.FAILED) == 2  # kept
    again = optimize(objective, space, retry_failed=True, **kwargs)
    assert [t.state for t in again.trials] == [TrialState.COMPLETE] * 4
    assert [t.params for t in again.trials] == [t.params for t in first.trials]
    kids = children(store, first.parent_run_id)
    assert sorted(r.data.tags["trial"] for r in kids if r.data.tags.get("retried") == "true") == ["1", "3"]
    assert MlflowClient(store).get_run(first.parent_run_id).data.metrics["n_complete"] == 4
