"""Classification metrics on a validation split (macro-averaged over classes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, matthews_corrcoef

TASK_METRICS = {
    "classification": ("train_loss", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity", "val_mcc",
                       "val_kappa"),
    "regression": ("train_loss", "val_loss", "val_rmse", "val_rmse_original"),
}


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> str:
    """The confusion matrix (rows: true class, columns: predicted) as CSV, for a trial's artifacts."""
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(num_classes))
    return pd.DataFrame(cm, index=pd.Index(range(num_classes), name="true"), columns=range(num_classes)).to_csv()


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy, MCC, and macro sensitivity (recall) and specificity, one-vs-rest per class.

    Sensitivity averages over the classes present in ``y_true`` (a class with no examples has no
    recall); specificity averages over every class, since each has negatives.
    """
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(num_classes))
    tp = np.diag(cm).astype(float)
    positives = cm.sum(axis=1)
    fp = cm.sum(axis=0) - tp
    negatives = cm.sum() - positives
    present = positives > 0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "sensitivity": float(np.mean(tp[present] / positives[present])),
        "specificity": float(np.mean((negatives - fp) / np.maximum(negatives, 1))),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }
