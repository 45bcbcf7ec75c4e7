import pytest
import torch

from hpo_tune.data import load_dataset
from hpo_tune.data.splits import holdout
from hpo_tune.errors import ConfigError, DataMissingError
from tests.conftest import DATA


@pytest.mark.usefixtures("mnist_available")
def test_mnist_subset_and_disjoint_validation(tmp_path):
    data = load_dataset("mnist", DATA / "mnist", tmp_path, seed=0, subset=300, val_size=100)
    assert data.x_train.shape == (300, 1, 28, 28) and data.x_val.shape == (100, 1, 28, 28)
    assert data.y_train.dtype == torch.long and set(data.y_train.tolist()) <= set(range(10))
    assert abs(data.x_train.mean().item()) < 0.2  # normalised
    train_rows = {row.numpy().tobytes() for row in data.x_train.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in data.x_val.flatten(1))
    larger = load_dataset("mnist", DATA / "mnist", tmp_path, seed=0, subset=400, val_size=100)
    assert torch.equal(larger.x_train[:300], data.x_train) and torch.equal(larger.x_val, data.x_val)


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(DataMissingError, match="dvc pull"):
        load_dataset("mnist", tmp_path / "nothing", tmp_path / "cache", seed=0)


def test_bad_subset_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="dataset.subset"):
        load_dataset("mnist", tmp_path, tmp_path, seed=0, subset=0)
    with pytest.raises(ConfigError, match="dataset.name"):
        load_dataset("emnist", tmp_path, tmp_path, seed=0)


def test_holdout_splits_nest_and_validate_on_test_images_when_asked():
    split = holdout(100, 20, seed=3, subset=30, val_size=10, test_size=5)
    assert len(split.train) == 30 and len(split.val) == 10 and len(split.test) == 5 and not split.val_from_test
    assert not set(split.train.tolist()) & set(split.val.tolist())
    larger = holdout(100, 20, seed=3, subset=60, val_size=10)
    assert larger.train[:30].tolist() == split.train.tolist() and larger.val.tolist() == split.val.tolist()
    assert len(larger.test) == 0 and holdout(100, 20, 3, None, 10, test_size=None).test.tolist() == list(range(20))
    on_test = holdout(100, 20, seed=3, subset=None, val_size=20, val_source="test")
    assert on_test.val_from_test and sorted(on_test.val.tolist()) == list(range(20)) and len(on_test.train) == 100
    for kwargs, key in (({"val_source": "dev"}, "dataset.val_source"), ({"test_size": 21}, "dataset.test_size"),
                        ({"val_size": 95}, "dataset.subset")):
        with pytest.raises(ConfigError, match=key):
            holdout(100, 20, 3, **{"subset": 10, "val_size": 10, **kwargs})


@pytest.mark.usefixtures("mnist_available")
def test_mnist_full_setting_validates_on_the_test_images(tmp_path):
    data = load_dataset("mnist", DATA / "mnist", tmp_path, seed=0, subset=50, val_size=10000, val_source="test")
    assert data.x_val.shape == (10000, 1, 28, 28) and data.x_test is None
    assert data.y_val.bincount().tolist()[:2] == [980, 1135]  # the official test set's class counts
