"""A short training loop: SGD/Adam over in-memory tensors, evaluate and report every epoch."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from src.data.splits import Splits
from src.errors import ConfigError
from src.training.metrics import classification_metrics

Report = Callable[[int, Mapping[str, float]], None]


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError("trainer.optimizer", f"unknown optimizer {name!r}; use 'sgd' or 'adam'")


def fit(model: nn.Module, data: Splits, *, epochs: int, batch_size: int, lr: float, optimizer: str = "sgd",
        momentum: float = 0.0, weight_decay: float = 0.0, device: str = "cpu", seed: int = 0,
        report: Report | None = None) -> dict[str, float]:
    """Train for ``epochs`` and return the last epoch's metrics; a non-finite loss raises.

    With ``epochs=0`` the untrained model is evaluated once (reported as epoch 0).
    """
    model.to(device)
    opt = make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    shuffle = torch.Generator().manual_seed(seed)
    x, y = data.x_train.to(device), data.y_train.to(device)
    metrics = evaluate(model, data, device)
    for epoch in range(1, epochs + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(y), generator=shuffle).split(batch_size):
            idx = idx.to(device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} in epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        metrics = {"train_loss": total / len(y), **evaluate(model, data, device)}
        if report is not None:
            report(epoch, metrics)
    if epochs == 0 and report is not None:
        report(0, metrics)
    return metrics


@torch.inference_mode()
def evaluate(model: nn.Module, data: Splits, device: str, batch_size: int = 1024) -> dict[str, float]:
    model.eval()
    losses, predictions = [], []
    for xb, yb in zip(data.x_val.split(batch_size), data.y_val.split(batch_size)):
        logits = model(xb.to(device))
        losses.append(F.cross_entropy(logits, yb.to(device), reduction="sum").item())
        predictions.append(logits.argmax(dim=1).cpu())
    scores = classification_metrics(data.y_val.numpy(), torch.cat(predictions).numpy(), data.num_classes)
    return {"val_loss": sum(losses) / len(data.y_val), **{f"val_{k}": v for k, v in scores.items()}}
