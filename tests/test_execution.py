"""Parallel and distributed trials: process workers, Ray, lost workers, time limits, pruning."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from hpo_tune import optimize
from hpo_tune.execution import InlineExecutor, ProcessExecutor
from hpo_tune.pruning import Pruner
from hpo_tune.trial import Direction, TrialState
from tests.conftest import IMPORT_PATH, ROOT, SLOW_SHARED_STORES, children

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def square(params, trial):
    return params["x"] ** 2


def slow_square(params, trial):
    time.sleep(0.3)
    return square(params, trial)


def climbing(params, trial):
    """Nine epochs of a learning curve, checkpointed, resumed from ``trial.restore()`` when promoted."""
    saved = trial.restore()
    for epoch in range(1 if saved is None else saved.state + 1, 10):
        trial.report(epoch, {"loss": (params["x"] - 0.5) ** 2 + 1 / epoch}, checkpoint=lambda epoch=epoch: epoch)
    return {"loss": (params["x"] - 0.5) ** 2 + 1 / 9}


def meets_its_sibling(params, trial):
    """Trials 0 and 1 each wait for the other to start, so they can only finish if they run at once."""
    markers = Path(os.environ["HPO_TEST_MARKERS"])
    if trial.number < 2:
        (markers / f"started-{trial.number}").touch()
        deadline = time.monotonic() + 120
        while not (markers / f"started-{1 - trial.number}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the other worker never started a trial")
            time.sleep(0.05)
    return square(params, trial)


def dies_once(params, trial):
    """Trial 2 kills its own worker the first time (SIGKILL: no cleanup, as an OOM kill would)."""
    marker = Path(os.environ["HPO_TEST_MARKERS"]) / f"died-{trial.number}"
    if trial.number == 2 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return params["x"]


def checkpointed(params, trial):
    """Five epochs adding x to a total, which ``report`` may checkpoint; each start is logged as ``number first-epoch
    node`` in the markers' ``starts``. The first time, trial 1 stops at epoch 4: it kills its worker (SIGKILL), or
    under Ray waits there (for the test to remove its node), having said on which node (``doomed``)."""
    markers = Path(os.environ["HPO_TEST_MARKERS"])
    node = ray_node()
    saved = trial.restore()
    first, total = (1, 0.0) if saved is None else (saved.epoch + 1, saved.state)
    with (markers / "starts").open("a") as starts:
        starts.write(f"{trial.number} {first} {node}\n")
    for epoch in range(first, 6):
        total += params["x"]
        if trial.number == 1 and epoch == 4 and not (markers / "doomed").exists():
            (markers / "doomed").write_text(node)
            if node == "local":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(120)
        trial.report(epoch, {"loss": total}, checkpoint=lambda total=total: total)
    return total


def ray_node() -> str:
    """The Ray node this process runs on ("local" outside Ray)."""
    ray = sys.modules.get("ray")
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else "local"


def starts(markers: Path) -> list[tuple[int, int, str]]:
    lines = (markers / "starts").read_text().splitlines()
    return [(int(n), int(first), node) for n, first, node in map(str.split, lines)]


def always_dies(params, trial):
    if trial.number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return params["x"]


def sleeps_at_one(params, trial):
    if trial.number == 1:
        time.sleep(60)
    return params["x"]


def stuck_at_one(params, trial):
    """Trial 1 blocks the alarm signal, as native code that never returns to Python would."""
    if trial.number == 1:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)
    return params["x"]


_LOADED: list[bool] = []  # per process: what SlowStart loaded


class SlowStart:
    """An objective that takes 3 s to load its data in each new process: in setup(), before the time limit
    starts, or else in its first call."""

    def setup(self):
        if not _LOADED:
            time.sleep(3)
            _LOADED.append(True)

    def __call__(self, params):
        self.setup()
        time.sleep(0.2)
        return params["x"]


def curve(params, trial):
    """A learning curve per trial: x sets its level, so trials with a large x are clearly bad."""
    for epoch in range(1, 6):
        trial.report(epoch, {"val_loss": params["x"] + 1.0 / epoch})
    return {"val_loss": params["x"] + 0.2}



def finished_numbers(store, parent):
    return sorted(int(r.data.tags["trial"]) for r in children(store, parent) if r.info.status == "FINISHED")


def test_two_process_workers_run_every_trial_exactly_once_and_in_parallel(store, study_name, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("HPO_TEST_MARKERS", str(tmp_path))
    result = optimize(meets_its_sibling, SPACE, n_trials=6, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(n_workers=2))
    kids = children(store, result.parent_run_id)
    assert finished_numbers(store, result.parent_run_id) == [0, 1, 2, 3, 4, 5] and len(kids) == 6
    assert len({r.data.tags["worker"] for r in kids}) == 2
    spans = sorted((r.info.start_time, r.info.end_time) for r in kids)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # two trials at once
    reference = optimize(square, SPACE, n_trials=6, study=f"{study_name}-inline", tracking_uri=store,
                         progress=False)
    assert [t.params for t in result.trials] == [t.params for t in reference.trials]


def test_a_warmed_pool_has_its_workers_running_before_the_first_trial_and_runs_the_study(store, study_name):
    executor, before = ProcessExecutor(n_workers=2), set(psutil.Process().children())
    executor.warm()
    workers = set(psutil.Process().children()) - before
    assert len(workers) == 2 and all(w.is_running() for w in workers)
    result = optimize(square, SPACE, n_trials=4, study=study_name, tracking_uri=store, progress=False,
                      executor=executor)
    assert finished_numbers(store, result.parent_run_id) == [0, 1, 2, 3]
    assert {r.data.tags["worker"].split(":")[1] for r in children(store, result.parent_run_id)} <= {
        str(w.pid) for w in workers}  # the warmed workers ran the trials: none was started for them


def test_a_worker_killed_mid_trial_is_retried(store, study_name, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_TEST_MARKERS", str(tmp_path))  # the workers, spawned later, inherit it
    result = optimize(dies_once, SPACE, n_trials=5, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(n_workers=2))
    assert finished_numbers(store, result.parent_run_id) == [0, 1, 2, 3, 4]
    lost = [r for r in children(store, result.parent_run_id) if r.data.tags.get("interrupted") == "true"]
    assert [r.data.tags["trial"] for r in lost] == ["2"] and "worker died" in lost[0].data.tags["error"]
    assert lost[0].data.params == next(r for r in children(store, result.parent_run_id)
                                       if r.info.status == "FINISHED" and r.data.tags["trial"] == "2").data.params


def test_a_trial_whose_worker_is_killed_goes_on_from_its_last_checkpoint(store, study_name, tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_TEST_MARKERS", str(tmp_path))
    result = optimize(checkpointed, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(n_workers=1), metric="loss", checkpoint_every=2)
    assert sorted(starts(tmp_path))[1:3] == [(1, 1, "local"), (1, 3, "local")]  # saved at 2, killed at 4
    again = result.trials[1]
    assert again.state is TrialState.COMPLETE and again.value == pytest.approx(5 * again.params["x"])
    runs = {r.data.tags["attempt"]: r for r in children(store, result.parent_run_id) if r.data.tags["trial"] == "1"}
    assert runs["0"].data.tags["checkpoint"] == "2" and runs["0"].data.tags["interrupted"] == "true"
    steps = [m.step for m in MlflowClient(store).get_metric_history(runs["1"].info.run_id, "loss")]
    assert steps == [3, 4, 5] and sorted(again.curve) == [1, 2, 3, 4, 5]  # its curve is whole on the last run


def test_a_trial_that_keeps_killing_its_worker_fails_after_max_retries(store, study_name):
    result = optimize(always_dies, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(n_workers=1), max_retries=1)
    states = {t.number: t.state for t in result.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAILED, 2: TrialState.COMPLETE}
    attempts = [r for r in children(store, result.parent_run_id) if r.data.tags["trial"] == "1"]
    assert len(attempts) == 2 and sum(r.data.tags.get("interrupted") == "true" for r in attempts) == 1
    assert any(r.data.tags["error"].startswith("gave up after 2 attempts") for r in attempts)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_the_time_limit_stops_a_trial_and_fails_it(store, study_name, executor):
    runner = InlineExecutor(trial_timeout=1.0) if executor == "inline" else ProcessExecutor(1, trial_timeout=1.0)
    started = time.monotonic()
    result = optimize(sleeps_at_one, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False,
                      executor=runner)
    assert time.monotonic() - started < 40
    assert [t.state for t in result.trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE]
    error = next(r for r in children(store, result.parent_run_id) if r.data.tags["trial"] == "1").data.tags["error"]
    assert "TrialTimeout" in error


def test_the_time_limit_counts_the_trial_not_the_workers_start_up(store, study_name):
    result = optimize(SlowStart(), SPACE, n_trials=2, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(1, trial_timeout=2.0, kill_grace_s=0.5))
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] * 2


def test_a_trial_stuck_past_its_time_limit_has_its_worker_killed(store, study_name):
    result = optimize(stuck_at_one, SPACE, n_trials=3, study=study_name, tracking_uri=store, progress=False,
                      executor=ProcessExecutor(1, trial_timeout=1.0, kill_grace_s=1.0))
    assert [t.state for t in result.trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.COMPLETE]
    error = next(r for r in children(store, result.parent_run_id) if r.data.tags["trial"] == "1").data.tags["error"]
    assert "TrialTimeout" in error and "stopped" in error


@pytest.mark.parametrize("name", ["median", "t_test"])
def test_pruners_stop_a_clearly_bad_curve_and_keep_a_good_one(name):
    pruner = Pruner(name, warmup=1, min_trials=3)
    siblings = [0.50, 0.52, 0.55, 0.58]
    assert pruner.verdict(3.0, siblings, Direction.MINIMIZE) is not None
    assert pruner.verdict(0.49, siblings, Direction.MINIMIZE) is None
    assert pruner.verdict(0.45, [0.9, 0.8, 0.85], Direction.MAXIMIZE) is not None  # worse when maximising
    assert pruner.verdict(3.0, siblings[:2], Direction.MINIMIZE) is None  # too few siblings yet


def test_a_pruned_study_records_pruned_trials_with_their_curves(store, study_name):
    space = {"x": {"type": "choice", "values": [0.0, 0.1, 0.2, 5.0, 6.0]}}
    result = optimize(curve, space, "grid", study=study_name, tracking_uri=store, progress=False,
                      metric="val_loss", pruner={"name": "median", "warmup": 2, "min_trials": 3})
    states = {t.params["x"]: t.state for t in result.trials}
    assert states == {0.0: TrialState.COMPLETE, 0.1: TrialState.COMPLETE, 0.2: TrialState.COMPLETE,
                      5.0: TrialState.PRUNED, 6.0: TrialState.PRUNED}
    pruned = [r for r in children(store, result.parent_run_id) if r.info.status == "KILLED"]
    assert len(pruned) == 2 and all("median" in r.data.tags["pruned"] for r in pruned)
    history = MlflowClient(store).get_metric_history(pruned[0].info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]  # stopped at the first epoch after the warm-up
    assert MlflowClient(store).get_run(result.parent_run_id).data.metrics["n_pruned"] == 2


def test_a_local_ray_cluster_runs_a_study(store, study_name):
    ray = pytest.importorskip("ray")
    sessions = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    path = os.pathsep.join([IMPORT_PATH, str(Path(__file__).parent)])  # pytest imports this file as a top-level module
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sessions, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        result = optimize(slow_square, SPACE, n_trials=4, study=study_name, tracking_uri=store, progress=False,
                          executor="ray")
        halving = optimize(climbing, SPACE, n_trials=6, study=f"{study_name}-asha", tracking_uri=store,
                           progress=False, executor="ray", metric="loss",
                           pruner={"name": "asha", "max_resource": 9, "mode": "promote"})
    finally:
        ray.shutdown()
        shutil.rmtree(sessions, ignore_errors=True)
    assert finished_numbers(store, result.parent_run_id) == [0, 1, 2, 3]
    complete = [t for t in halving.trials if t.state is TrialState.COMPLETE]  # promoted from checkpoints in tasks
    assert complete and all(sorted(t.curve) == list(range(1, 10)) and 1 in t.rungs for t in complete)
    assert all(t.paused for t in halving.trials if t.state is TrialState.PRUNED)


def test_a_ray_node_lost_mid_trial_reruns_the_trial_once_elsewhere_from_its_checkpoint(tracking_server, study_name,
                                                                                      tmp_path):
    """A head and two one-CPU worker nodes on this machine (Ray's ``cluster_utils``, as Ray's own tests do), the
    study through the project's server: trial 1's node is removed while it runs (after its checkpoint at epoch 2)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from hpo_tune.execution import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head runs no trials
    nodes = {node.node_id: node for node in (cluster.add_node(num_cpus=1) for _ in range(2))}
    path = os.pathsep.join([IMPORT_PATH, str(Path(__file__).parent)])
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "HPO_TEST_MARKERS": str(tmp_path)}})
    removed: list[str] = []

    def remove_the_doomed_node() -> None:
        doomed = tmp_path / "doomed"
        deadline = time.monotonic() + 120
        while not doomed.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if doomed.exists():
            removed.append(doomed.read_text())
            cluster.remove_node(nodes[removed[0]], allow_graceful=False)

    remover = threading.Thread(target=remove_the_doomed_node)
    try:
        cluster.wait_for_nodes()
        remover.start()
        result = optimize(checkpointed, SPACE, n_trials=4, study=study_name, tracking_uri=tracking_server,
                          progress=False, executor=RayExecutor(n_workers=2), metric="loss", checkpoint_every=2)
    finally:
        remover.join()
        ray.shutdown()
        cluster.shutdown()
    assert removed, "trial 1 never reached epoch 4 on a node"
    runs_of_one = [(first, node) for number, first, node in starts(tmp_path) if number == 1]
    assert runs_of_one == [(1, removed[0]), (3, runs_of_one[1][1])] and runs_of_one[1][1] != removed[0]
    assert finished_numbers(tracking_server, result.parent_run_id) == [0, 1, 2, 3]  # each number exactly once
    assert all(t.state is TrialState.COMPLETE for t in result.trials) and len(result.trials) == 4
    assert result.trials[1].value == pytest.approx(5 * result.trials[1].params["x"])


DRIVER = textwrap.dedent("""
    import sys
    from hpo_tune import optimize
    from hpo_tune.execution import ProcessExecutor
    from tests.test_execution import SPACE, slow_square

    optimize(slow_square, SPACE, n_trials=6, study=sys.argv[2], tracking_uri=sys.argv[1], progress=False,
             executor=ProcessExecutor(n_workers=2))
""")


@SLOW_SHARED_STORES
def test_two_concurrent_studies_with_workers_lose_no_runs(shared_store, study_name):
    uri = shared_store
    env = {**os.environ, "PYTHONPATH": IMPORT_PATH}
    drivers = [subprocess.Popen([sys.executable, "-c", DRIVER, uri, f"{study_name}-{k}"], env=env, cwd=ROOT)
               for k in range(2)]
    assert [d.wait(timeout=240) for d in drivers] == [0, 0]
    client = MlflowClient(uri)
    for k in range(2):
        parent = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                    f"tags.study = '{study_name}-{k}'")[0]
        assert finished_numbers(uri, parent.info.run_id) == [0, 1, 2, 3, 4, 5]
