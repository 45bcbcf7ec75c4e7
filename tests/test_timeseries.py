import numpy as np
import pandas as pd
import pytest
import torch

from hpo_tune.data.timeseries import (
    BDI_CSV,
    DJIA_CSV,
    FEATURES,
    GOLD_CSV,
    TARGETS,
    bdi_months,
    gold_months,
    load_bdi,
    load_gold,
    make_windows,
    n_features,
)
from hpo_tune.errors import ConfigError, DataMissingError
from tests.conftest import DATA

GOLD, BDI = DATA / "gold", DATA / "bdi"
DATASETS = {  # name -> (loader, monthly table at the loader's defaults)
    "gold": (load_gold, lambda cache: gold_months(GOLD, cache, "1979-01", "2018-04")),
    "bdi": (load_bdi, lambda cache: bdi_months(BDI, cache, "2009-05", "2017-11")),
}


@pytest.fixture(scope="module", autouse=True)
def data_available() -> None:
    if not all(path.is_file() for path in (GOLD / GOLD_CSV, BDI / BDI_CSV, BDI / DJIA_CSV)):
        pytest.fail("data/gold or data/bdi is missing: run `dvc pull` before the tests")


def load(name: str, tmp_path, **options):
    return DATASETS[name][0](DATA / name, tmp_path, seed=0, **options)


def joined(data) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([data.x_train, data.x_val, data.x_test]), torch.cat([data.y_train, data.y_val, data.y_test])


def test_feature_counts():
    assert n_features("gold") == 4 and n_features("bdi") == 2
    assert TARGETS["gold"] in FEATURES["gold"] and TARGETS["bdi"] in FEATURES["bdi"]


@pytest.mark.parametrize("name", ["gold", "bdi"])
@pytest.mark.parametrize("time_steps", [1, 5, 10])
def test_windows_shapes_and_split_sizes(name, time_steps, tmp_path):
    data, months = load(name, tmp_path, time_steps=time_steps), DATASETS[name][1](tmp_path)
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == len(months) - time_steps  # every month after the first window is a target once
    assert abs(sizes[1] - 0.15 * sum(sizes)) <= 1 and abs(sizes[2] - 0.15 * sum(sizes)) <= 1
    for x, y, n in zip((data.x_train, data.x_val, data.x_test), (data.y_train, data.y_val, data.y_test), sizes):
        assert x.shape == (n, time_steps, n_features(name)) and y.shape == (n, 1)
        assert x.dtype == y.dtype == torch.float32
    assert data.num_classes is None and data.num_outputs == 1 and data.input_shape == (time_steps, n_features(name))


@pytest.mark.parametrize("name", ["gold", "bdi"])
@pytest.mark.parametrize("time_steps", [3, 8])
def test_windows_are_chronological_and_predict_the_next_month(name, time_steps, tmp_path):
    data, months = load(name, tmp_path, time_steps=time_steps), DATASETS[name][1](tmp_path)
    x, y = joined(data)
    target = months[TARGETS[name]].to_numpy()
    j = list(months.columns).index(TARGETS[name])
    # scaled differences times target_scale are differences in original units, in the months' order:
    # train targets come first, then validation, then test, and y[i] is month i + time_steps
    torch.testing.assert_close((y[:, 0] - y[0, 0]).double() * data.target_scale,
                               torch.tensor(target[time_steps:] - target[time_steps]), rtol=1e-5, atol=1e-2)
    # window i holds months i .. i + time_steps - 1, so its target is the month right after it
    steps = np.arange(len(y))[:, None] + np.arange(time_steps)
    torch.testing.assert_close((x[:, :, j] - y[0, 0]).double() * data.target_scale,
                               torch.tensor(target[steps] - target[time_steps]), rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(x[1:, -1, j], y[:-1, 0])
    for c, column in enumerate(months.columns):  # every input is an increasing affine map of its monthly values
        original, scaled = months[column].to_numpy()[steps].ravel(), x[:, :, c].double().numpy().ravel()
        slope, intercept = np.polyfit(original, scaled, 1)
        assert slope > 0 and np.allclose(scaled, slope * original + intercept, atol=1e-5)


@pytest.mark.parametrize("name", ["gold", "bdi"])
def test_scaling_is_fitted_on_training_months_only(name, tmp_path):
    data = load(name, tmp_path, time_steps=5)
    j = list(FEATURES[name]).index(TARGETS[name])
    train_target = torch.cat([data.x_train[:, :, j].ravel(), data.y_train.ravel()])
    assert train_target.min().item() == pytest.approx(0, abs=1e-6)
    assert train_target.max().item() == pytest.approx(1, abs=1e-6)
    assert (data.x_train >= -1e-6).all() and (data.x_train <= 1 + 1e-6).all()
    later = torch.cat([data.x_val.ravel(), data.y_val.ravel(), data.x_test.ravel(), data.y_test.ravel()])
    assert ((later < -1e-3) | (later > 1 + 1e-3)).any()  # later months were not part of the fit


def test_scaling_includes_the_last_training_target():
    # a rising series: the last training window's target is the training maximum, so it must scale to 1
    months = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) ** 2},
                          index=pd.period_range("2000-01", periods=40, freq="M"))
    data = make_windows(months, "a", time_steps=4, val_fraction=0.2, test_fraction=0.2)
    assert float(data.y_train[-1]) == 1.0 and float(data.x_train[0, 0, 0]) == 0.0
    assert (data.y_val > 1).all() and (data.x_val[1:, -1] > 1).all()


def test_target_scale_gives_back_original_units(tmp_path):
    # the last gold target is April 2018, USD 1313.2 (the check value in data/gold/SOURCE.md)
    data, months = load("gold", tmp_path, time_steps=5), DATASETS["gold"][1](tmp_path)
    train_months = months["United States"].iloc[: len(data.y_train) + 5]
    assert float(data.y_test[-1]) * data.target_scale + train_months.min() == pytest.approx(1313.2, abs=0.01)
    assert data.target_scale == pytest.approx(train_months.max() - train_months.min())


@pytest.mark.parametrize("aggregation", ["close", "mean"])
def test_bdi_months_aggregate_the_daily_values(aggregation, tmp_path):
    daily = pd.read_csv(BDI / BDI_CSV)
    november = daily.loc[daily["Date"].str.startswith("2017/11/"), "Value"]
    expected = november.iloc[-1] if aggregation == "close" else november.mean()
    months = bdi_months(BDI, tmp_path, "2017-06", "2017-11", aggregation)
    assert list(months.columns) == FEATURES["bdi"] and len(months) == 6
    assert months["BDI"].iloc[-1] == pytest.approx(expected)
    close = load("bdi", tmp_path, time_steps=5)
    mean = load("bdi", tmp_path, time_steps=5, aggregation="mean")
    assert close.x_train.shape == mean.x_train.shape and not torch.allclose(close.x_train, mean.x_train)


@pytest.mark.parametrize("name", ["gold", "bdi"])
def test_missing_data_says_run_dvc_pull(name, tmp_path):
    with pytest.raises(DataMissingError, match="dvc pull"):
        DATASETS[name][0](tmp_path / "nothing", tmp_path / "cache", seed=0, time_steps=5)


@pytest.mark.parametrize("name", ["gold", "bdi"])
def test_bad_options_name_the_key(name, tmp_path):
    with pytest.raises(ConfigError, match="dataset.time_steps"):
        load(name, tmp_path, time_steps=0)
    with pytest.raises(ConfigError, match="dataset.time_steps"):  # too few months left for the splits
        load(name, tmp_path, time_steps=len(DATASETS[name][1](tmp_path)) - 1)
    with pytest.raises(ConfigError, match="dataset.start"):
        load(name, tmp_path, time_steps=5, start="1900-01")
    with pytest.raises(ConfigError, match="dataset.end"):
        load(name, tmp_path, time_steps=5, end="not a month")
    with pytest.raises(ConfigError, match="dataset.val_fraction"):
        load(name, tmp_path, time_steps=5, val_fraction=0)
    with pytest.raises(ConfigError, match="dataset.test_fraction"):
        load(name, tmp_path, time_steps=5, val_fraction=0.5, test_fraction=0.5)
    if name == "bdi":
        with pytest.raises(ConfigError, match="dataset.aggregation"):
            load(name, tmp_path, time_steps=5, aggregation="median")


def test_no_test_split_when_test_fraction_is_zero(tmp_path):
    data = load("bdi", tmp_path, time_steps=5, test_fraction=0)
    assert data.x_test is None and data.y_test is None
    assert len(data.y_train) + len(data.y_val) == len(DATASETS["bdi"][1](tmp_path)) - 5
