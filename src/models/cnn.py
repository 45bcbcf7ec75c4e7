"""A configurable image CNN in the style of the seed-001 MNIST network (its Table 2).

That network (after the "deep ConvNet" it cites) stacks 3x3 convolutions with ReLU, pools after
every second one, then fully connected ReLU layers with dropout; weights use He (Kaiming)
initialisation. Channels, pooling, dense widths and dropout are arguments so the same class
serves the smoke scale and the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, conv_channels: Sequence[int] = (16, 32),
                 pool_every: int = 1, dense: Sequence[int] = (64,), dropout: float = 0.5):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        channels, height, width = input_shape
        layers: list[nn.Module] = []
        for i, out in enumerate(conv_channels, start=1):
            layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU()]
            channels = out
            if pool_every and i % pool_every == 0 and min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        layers.append(nn.Flatten())
        features = channels * height * width
        for size in dense:
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
