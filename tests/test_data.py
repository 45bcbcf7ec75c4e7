import pytest
import torch

from src.data import load_dataset
from src.errors import ConfigError, DataMissingError
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
