"""The GPU fast path falls back cleanly on the CPU, and its switches do what they say."""

import math

import pytest
import torch

from hpo_tune.errors import ConfigError
from hpo_tune.models import build_model
from hpo_tune.training.accel import autocast, on_device, prepare, uses_channels_last
from hpo_tune.training.loop import fit
from tests.test_training import toy_splits

CNN = {"arch": "cnn", "conv_channels": [4], "dense": [8], "dropout": 0.0}
LSTM = {"arch": "lstm", "hidden_size": 4, "num_layers": 1, "cell_activation": "tanh", "fc_activation": "relu"}


def test_auto_precision_is_plain_float32_on_the_cpu_and_bf16_when_asked():
    with autocast("cpu", "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ConfigError, match="trainer.precision"):
        autocast("cpu", "fp16")


def test_channels_last_applies_to_cnns_on_cuda_only():
    cnn, lstm = build_model(CNN, (1, 8, 8), 2), build_model(LSTM, (5, 3), 1)
    assert uses_channels_last(cnn, "cuda:0", True) and not uses_channels_last(cnn, "cuda:0", False)
    assert not uses_channels_last(cnn, "cpu", True) and not uses_channels_last(lstm, "cuda", True)


def test_data_stays_put_on_the_cpu():
    data = toy_splits()
    assert on_device(data, "cpu") is data


def test_compiling_keeps_the_models_own_state_dict_keys():
    model = build_model(CNN, (1, 8, 8), 2)
    keys = list(model.state_dict())
    forward, _ = prepare(model, "cpu", channels_last=True, compile=True)  # compiles lazily, at the first call
    assert forward is not model and list(model.state_dict()) == keys


def test_bf16_on_the_cpu_computes_the_same_function_up_to_rounding_and_keeps_fp32_weights():
    data = toy_splits(256)
    untrained = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        untrained[precision] = fit(build_model(CNN, (1, 8, 8), 2), data, epochs=0, batch_size=16, lr=0.01,
                                   precision=precision)
    assert untrained["bf16"]["val_loss"] == pytest.approx(untrained["fp32"]["val_loss"], rel=0.02)
    model = build_model(CNN, (1, 8, 8), 2)
    metrics = fit(model, data, epochs=2, batch_size=16, lr=0.01, momentum=0.9, precision="bf16")
    assert all(math.isfinite(v) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast leaves the weights in fp32
