import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import matthews_corrcoef, recall_score

from hpo_tune.data.splits import Splits
from hpo_tune.errors import NoTrialCompletedError
from hpo_tune.models import build_model
from hpo_tune.training.loop import fit
from hpo_tune.training.metrics import classification_metrics
from hpo_tune.trial import Checkpoint
from hpo_tune.tune import run
from tests.conftest import children, runs


def toy_splits(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=gen)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return Splits(x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :], num_classes=2)


def test_metrics_match_sklearn_on_hand_made_labels():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2, 0])
    scores = classification_metrics(y_true, y_pred, 3)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["sensitivity"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    # specificity of class 0: 4 of the 5 non-zeros are not called 0; class 1: 5/6; class 2: 5/5
    assert scores["specificity"] == pytest.approx(np.mean([4 / 5, 5 / 6, 1.0]))
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))


def test_a_training_paused_at_a_checkpoint_and_resumed_ends_where_an_unpaused_one_does():
    """What promote-mode pruners rely on: model, optimiser (momentum), shuffling and dropout all carry on."""
    data = toy_splits(256)
    spec = {"arch": "cnn", "conv_channels": [4], "dense": [8], "dropout": 0.3}
    options = dict(epochs=4, batch_size=16, lr=0.05, momentum=0.9, seed=3)
    torch.manual_seed(0)
    whole = fit(build_model(spec, (1, 8, 8), 2), data, **options)

    class Paused(Exception):
        pass

    def pause_at_2(epoch, metrics, checkpoint=None):
        if epoch == 2:
            raise Paused(copy.deepcopy(checkpoint()))

    torch.manual_seed(0)
    with pytest.raises(Paused) as paused:
        fit(build_model(spec, (1, 8, 8), 2), data, report=pause_at_2, **options)
    torch.manual_seed(123)  # another process, other random weights: the checkpoint decides everything
    reports = []
    resumed = fit(build_model(spec, (1, 8, 8), 2), data, resume=Checkpoint(2, paused.value.args[0]),
                  report=lambda epoch, m, **_: reports.append(epoch), **options)
    assert reports == [3, 4]
    assert resumed == pytest.approx(whole, rel=1e-6)


def test_cnn_shapes_and_he_init():
    model = build_model({"arch": "cnn", "name": "x", "conv_channels": [4, 8], "pool_every": 2, "dense": [16],
                         "dropout": 0.5}, (1, 28, 28), 10)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    first = model.net[0].weight
    assert first.std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.35)


def test_fit_reports_every_epoch_and_learns():
    data = toy_splits(256)
    model = build_model({"arch": "cnn", "conv_channels": [4], "dense": [8], "dropout": 0.0}, (1, 8, 8), 2)
    reports = []
    metrics = fit(model, data, epochs=3, batch_size=16, lr=0.05, momentum=0.9, seed=0,
                  report=lambda epoch, m, **_: reports.append((epoch, dict(m))))
    assert [epoch for epoch, _ in reports] == [1, 2, 3]
    assert set(reports[-1][1]) == {"train_loss", "val_loss", "val_accuracy", "val_sensitivity",
                                   "val_specificity", "val_mcc"}
    assert metrics == reports[-1][1]
    assert reports[-1][1]["train_loss"] < reports[0][1]["train_loss"]


def test_nan_loss_raises():
    data = toy_splits()
    poisoned = Splits(data.x_train * float("nan"), data.y_train, data.x_val, data.y_val, 2)
    model = build_model({"arch": "cnn", "conv_channels": [2], "dense": [4], "dropout": 0.0}, (1, 8, 8), 2)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, poisoned, epochs=1, batch_size=8, lr=0.1)


@pytest.mark.usefixtures("mnist_available")
def test_diverging_trials_fail_and_the_study_says_none_completed(make_config, store, study_name):
    cfg = make_config("n_trials=2", "space.trainer.lr.low=1e30", "space.trainer.lr.high=1e31",
                      "trainer.batch_size=32")
    with pytest.raises(NoTrialCompletedError, match=r"\(2 of 2 failed\): FloatingPointError"):
        run(cfg)
    parent = runs(store, f"tags.study = '{study_name}'")[0]
    errors = [r.data.tags["error"] for r in children(store, parent.info.run_id)]
    assert len(errors) == 2 and all(e.startswith("FloatingPointError") for e in errors), errors


def test_regression_reports_rmse_scaled_and_original_and_the_test_split_once():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(96, 5, 2, generator=gen)
    y = x.sum(dim=(1, 2)).unsqueeze(1) / 10
    data = Splits(x[:64], y[:64], x[64:80], y[64:80], None, x[80:], y[80:], target_scale=250.0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))
    reports = []
    metrics = fit(model, data, epochs=2, batch_size=16, lr=0.05, optimizer="adam",
                  report=lambda epoch, m, **_: reports.append((epoch, dict(m))))
    assert [epoch for epoch, _ in reports] == [1, 2]
    assert not any(k.startswith("test_") for k in reports[0][1])
    assert metrics == reports[-1][1]
    assert metrics["val_rmse"] == pytest.approx(metrics["val_loss"] ** 0.5)
    assert metrics["val_rmse_original"] == pytest.approx(250.0 * metrics["val_rmse"])
    assert metrics["test_rmse_original"] == pytest.approx(250.0 * metrics["test_loss"] ** 0.5)
