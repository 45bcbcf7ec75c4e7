"""A small multi-layer perceptron on scikit-learn's bundled digits (8x8 images, 10 classes; no download)."""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def digits(val_fraction: float, seed: int) -> tuple[torch.Tensor, ...]:
    """Train and validation tensors, pixels scaled to [0, 1]."""
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=val_fraction, random_state=seed,
                                                      stratify=y)
    return (torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train),
            torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val))


def mlp(layers: int, width: int, act: str) -> nn.Sequential:
    sizes = [64, *([width] * layers)]
    hidden = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), ACTIVATIONS[act]())]
    return nn.Sequential(*hidden, nn.Linear(sizes[-1], 10))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Validation cross-entropy and accuracy."""
    with torch.no_grad():
        logits = model(x)
        return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              batch_size: int, rng: np.random.Generator) -> None:
    for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch_size)):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
