"""Train the digits MLP once: ``python train.py lr=0.05 layers=3``. It returns the validation loss (for a
sweeper) and logs its curve to MLflow's active run, if there is one."""

import hydra
import mlflow
import numpy as np
import torch
from omegaconf import DictConfig
from src.model import digits, evaluate, mlp, one_epoch


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def train(cfg: DictConfig) -> dict[str, float]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_train, y_train, x_val, y_val = digits(cfg.val_fraction, cfg.seed)
    model = mlp(cfg.layers, cfg.width, cfg.act)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in range(1, cfg.epochs + 1):
        one_epoch(model, optimizer, x_train, y_train, cfg.batch_size, rng)
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        mlflow.log_metrics({"val_loss": val_loss, "val_accuracy": val_accuracy}, step=epoch)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


if __name__ == "__main__":
    train()
