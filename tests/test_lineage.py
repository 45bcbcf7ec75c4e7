"""What a study's runs let a user do later: say which code and data made them, and load the best model."""

import json
import subprocess
import time

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.space import SearchSpace
from hpo_tune.tracking import Tracker, TrialRecorder
from hpo_tune.tracking.lineage import data_version
from hpo_tune.trial import Direction, Proposal, TrialState
from hpo_tune.tune import run
from tests.conftest import DATA, ROOT, children, runs

pytestmark = pytest.mark.usefixtures("mnist_available")


def dvc_digest_of(dataset: str) -> str:
    """What data.dvc records for the dataset's folder, read the long way: the manifest in DVC's cache."""
    import hashlib

    digest = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    entries = json.loads((ROOT / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).read_text())
    mine = sorted((e["relpath"], e["md5"]) for e in entries if e["relpath"].startswith(f"{dataset}/"))
    return hashlib.md5(json.dumps(mine).encode()).hexdigest()


def test_every_run_says_which_code_and_which_data_made_it(make_config, store, study_name):
    result = run(make_config("n_trials=2"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    parent = MlflowClient(store).get_run(result.parent_run_id)
    for run_ in [parent, *children(store, result.parent_run_id)]:
        tags = run_.data.tags
        assert tags["mlflow.source.git.commit"] == head
        assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
        assert tags["code.dirty"] in ("true", "false")
    trial = children(store, result.parent_run_id)[0]
    inputs = {i.dataset.name: (i.dataset.digest, [t.value for t in i.tags]) for i in trial.inputs.dataset_inputs}
    digest = dvc_digest_of("mnist")
    assert inputs == {"mnist.training": (digest, ["training"]), "mnist.validation": (digest, ["validation"])}
    assert json.loads(trial.inputs.dataset_inputs[0].dataset.source)["dvc_file"] == "data.dvc"
    by_version = runs(store, f"datasets.digest = '{digest}' and datasets.context = 'validation'")
    assert {r.info.run_id for r in by_version} >= {r.info.run_id for r in children(store, result.parent_run_id)}
    experiment = MlflowClient(store).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs


def test_a_folder_dvc_does_not_track_is_versioned_by_its_contents(tmp_path):
    for name, text in (("one", "1,2\n"), ("same", "1,2\n"), ("other", "1,3\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.csv").write_text(text)
    one, same, other = (data_version("toy", tmp_path / name, {"training": 1}) for name in ("one", "same", "other"))
    assert one.digest == same.digest != other.digest
    assert json.loads(one.source) == {"path": str(tmp_path / "one")}
    assert data_version("mnist", DATA / "mnist", {"training": 1}).digest == dvc_digest_of("mnist")


def test_the_best_trials_model_is_registered_and_loads_as_study_at_best(make_config, store, study_name):
    result = run(make_config("n_trials=3"))
    client = MlflowClient(store)
    version = client.get_model_version_by_alias(study_name, "best")
    assert version.run_id == result.best.run_id
    kept = [r for r in children(store, result.parent_run_id) if "model" in r.data.tags]
    assert result.best.run_id in {r.info.run_id for r in kept}
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    logged = client.search_logged_models(experiment_ids=[experiment],
                                         filter_string=f"source_run_id = '{result.best.run_id}'")
    assert [m.status for m in logged] == ["READY"]  # in the study's experiment, linked to its trial
    mlflow.set_tracking_uri(store)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{study_name}@best")
    finally:
        mlflow.set_tracking_uri(None)
    assert model.metadata.signature is not None and model.metadata.get_input_schema().inputs
    predicted = model.predict(np.zeros((4, 1, 28, 28), dtype=np.float32))
    assert predicted.shape == (4, 10)


@pytest.mark.parametrize(("policy", "kept"), [("none", 0), ("all", 3)])
def test_log_models_keeps_none_or_every_trials_model(make_config, store, study_name, policy, kept):
    result = run(make_config("n_trials=3", f"tracking.log_models={policy}"))
    assert sum("model" in r.data.tags for r in children(store, result.parent_run_id)) == kept


@pytest.mark.parametrize("where", ["store", "tracking_server"])  # a server wants the model id with a models:/ source
def test_a_better_trial_moves_the_alias(where, study_name, request):
    import torch

    store = request.getfixturevalue(where)

    def objective(params, trial):
        trial.keep_model(torch.nn.Linear(2, 1), np.zeros((1, 2), dtype=np.float32))
        return params["x"]

    space = {"x": {"type": "choice", "values": [3.0, 2.0, 1.0]}}
    result = optimize(objective, space, "grid", study=study_name, tracking_uri=store, progress=False)
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] * 3
    client = MlflowClient(store)
    versions = client.search_model_versions(f"name = '{study_name}'")
    assert len(versions) >= 1 and client.get_model_version_by_alias(study_name, "best").run_id == result.best.run_id
    assert result.best.params == {"x": 1.0}


def test_system_metrics_are_logged_on_a_trials_run(store, study_name):
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    optimize(lambda p: p["x"], space, n_trials=1, study=study_name, tracking_uri=store, progress=False)
    record = Tracker(store).load_study("hpo", study_name, SearchSpace.from_config(space), Direction.MINIMIZE)
    record.history()
    recorder = TrialRecorder(record.sink, record.start_trial(1, Proposal({"x": 0.5}), "cpu"), {"x": 0.5})
    with recorder.system_metrics(True, interval_s=0.5):
        time.sleep(2.0)
    metrics = MlflowClient(store).get_run(recorder.run_id).data.metrics
    assert any(name.startswith("system/cpu") for name in metrics), sorted(metrics)
