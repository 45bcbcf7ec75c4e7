"""A configurable image CNN covering the three papers' networks.

Blocks of 3x3 convolutions (padding 1) with ReLU, a 2x2 max-pool after every ``pool_every``
convolutions (optionally followed by ``conv_dropout``), then fully connected ReLU layers with
``dropout``; weights use He (Kaiming) initialisation. Seed 001's MNIST network (its Table 2, after
the "deep ConvNet" it cites) is conv 16-16-32-32-64-64 pooled every second conv, dense 50, dropout
0.5; its CIFAR-10 network (the Keras example CNN) is conv 32-32-64-64 pooled every second conv
with dropout 0.25, dense 512, dropout 0.5 (the Keras example leaves its second conv of each block
unpadded; here every conv is padded); seed 002's is ``conv_layers`` x ``filters`` (3 or 6 x 64)
and ``dense_layers`` x ``dense`` units, dropout 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, conv_channels: Sequence[int] | int = (16, 32),
                 pool_every: int = 1, dense: Sequence[int] | int = (64,), dropout: float = 0.5,
                 conv_dropout: float = 0.0, conv_layers: int | None = None, dense_layers: int | None = None):
        """``conv_layers`` / ``dense_layers`` repeat an integer ``conv_channels`` / ``dense`` that many
        times, so the number of layers can be a hyperparameter of its own (seed 002)."""
        super().__init__()
        for name, rate in (("dropout", dropout), ("conv_dropout", conv_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        channels_out = _layers(conv_channels, conv_layers, "conv_channels", "conv_layers")
        dense_out = _layers(dense, dense_layers, "dense", "dense_layers")
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for i, out in enumerate(channels_out, start=1):
            layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU()]
            channels = out
            if pool_every and i % pool_every == 0 and min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
                if conv_dropout:
                    layers.append(nn.Dropout(conv_dropout))
        layers.append(nn.Flatten())
        features = channels * height * width
        for size in dense_out:
            layers += [nn.Linear(features, size), nn.ReLU(), nn.Dropout(dropout)]
            features = size
        layers.append(nn.Linear(features, num_outputs))
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _layers(sizes: Sequence[int] | int, count: int | None, sizes_key: str, count_key: str) -> list[int]:
    if count is None:
        if isinstance(sizes, int):
            raise ValueError(f"an integer {sizes_key} needs {count_key}")
        return [int(s) for s in sizes]
    if not isinstance(sizes, int) or count < 0:
        raise ValueError(f"{count_key} needs an integer {sizes_key} and a count >= 0, got {sizes!r} x {count!r}")
    return [sizes] * int(count)
