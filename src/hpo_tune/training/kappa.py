"""Seed 001's objective kappa: validation accuracy and log loss in one number to maximise.

The thesis (sec. 3.2) found accuracy alone too jumpy as a BO objective and loss alone misleading
(a low loss does not guarantee a high accuracy), so it scores a model by both. Its formulas were lost
in extraction; they are reconstructed from the prose around them:

- eq. 11 ("original", from the authors' earlier work): "Ma is the accuracy, Ml the loss, lambda an
  adjusting value between 0 and 1, and the log is applied to Ml to sharpen the differences near 0";
  the model is good when "Ma minus Ml" is largest, and since Ml > Ma could give a negative value "an
  extra condition was added":

      kappa = Ma - lambda * ln(Ml)   if Ma > Ml,      0   if Ma <= Ml.

  Lower loss raises kappa (ln Ml < 0 for Ml < 1). The paper's Fig. 9 comment, "kappa depends heavily
  on Ma, so it varies little with Ml", fits a loss term damped by lambda < 1.
- eq. 12 ("improved", the one the thesis uses): "Ma is squared and Ml is divided by lambda", so
  that Ml discriminates more (Fig. 10):

      kappa = Ma^2 - ln(Ml) / lambda   if Ma > Ml,    0   if Ma <= Ml.

  Dividing the log by lambda < 1 amplifies the loss term; reading it as ln(Ml / lambda) instead
  would only shift kappa by a constant and could not change how it ranks models.

Ma is a fraction in [0, 1] (the project's ``val_accuracy``) and Ml the mean cross-entropy. The
paper gives lambda only as "between 0 and 1"; the default 0.5 is the middle of that range. A loss of
exactly 0 (possible when every softmax saturates) is floored at ``LOSS_FLOOR`` so kappa stays finite;
an infinite loss gives 0 like any loss above the accuracy.
"""

from __future__ import annotations

import math

VARIANTS = ("original", "improved")
DEFAULT_LAMBDA = 0.5
LOSS_FLOOR = 1e-12


def kappa(accuracy: float, loss: float, variant: str = "improved", lam: float = DEFAULT_LAMBDA) -> float:
    """kappa of eq. 11 (``original``) or eq. 12 (``improved``); larger is better."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown kappa variant {variant!r}; use one of {list(VARIANTS)}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    if not loss >= 0.0:
        raise ValueError(f"loss must be a number >= 0, got {loss}")
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"lambda must be in (0, 1], got {lam}")
    if accuracy <= loss:
        return 0.0
    log_loss = math.log(max(loss, LOSS_FLOOR))
    if variant == "original":
        return accuracy - lam * log_loss
    return accuracy**2 - log_loss / lam
