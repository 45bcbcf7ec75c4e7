"""Models by architecture name, built from the ``model`` config and the data's shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from hpo_tune.errors import ConfigError
from hpo_tune.models.cnn import CNN
from hpo_tune.models.lstm import LSTMRegressor

ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": CNN, "lstm": LSTMRegressor}


def build_model(config: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """``config`` is the model node: ``arch`` picks the class, the other keys (but ``name``) are its arguments."""
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ConfigError("model.arch", f"unknown architecture {arch!r}; use one of {sorted(ARCHITECTURES)}")
    options = {k: v for k, v in config.items() if k not in ("arch", "name")}
    return ARCHITECTURES[arch](input_shape=input_shape, num_outputs=num_outputs, **options)


__all__ = ["ARCHITECTURES", "build_model"]
