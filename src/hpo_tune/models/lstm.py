"""A many-to-one LSTM regressor with a choice of cell and output activations (seed 000's model).

The seed-000 paper tunes five hyperparameters of an LSTM forecaster: hidden nodes, hidden layers,
time steps, the "cell activation function" and the "fully connected activation function", each of
the last two one of sigmoid, tanh and ReLU. Its code is not given, so the two activations are read
the way Keras (which such models are usually written in) names them:

- **Cell activation** is Keras' ``LSTM(activation=...)``: it replaces tanh in the candidate
  ``g = act(W_g [x_t, h_{t-1}] + b_g)`` and in the output ``h_t = o_t * act(c_t)``; the input,
  forget and output gates keep the sigmoid (Keras' ``recurrent_activation``). ``nn.LSTM`` only
  has tanh, so sigmoid and ReLU run through ``LSTMLayer`` below; tanh uses ``nn.LSTM``, which is
  faster, and a test checks that ``LSTMLayer`` with tanh gives the same outputs for the same weights.
- **Fully connected activation** is the activation of the final dense layer that maps the last
  hidden state to the prediction, Keras' ``Dense(1, activation=...)``. The targets are min-max
  scaled to [0, 1] on the training months (``hpo_tune.data.timeseries``), so sigmoid, tanh and ReLU can
  all reach every training target; validation or test targets beyond the training range (above 1
  or below 0) are out of reach of sigmoid and tanh, and a ReLU output that starts negative for
  every input learns nothing. Both are consequences of the paper's search space, which the search
  measures, not bugs to hide.

Both paths have ``nn.LSTM``'s parameters (two biases included) and its initialisation (uniform in
+-1/sqrt(hidden_size)), so the cell activation is the only thing that differs between them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
}


def activation(name: str, role: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"{role} must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class LSTMLayer(nn.Module):
    """One batch-first LSTM layer whose candidate and output use ``act`` instead of tanh.

    The input projections of all steps are computed in one matmul before the loop; each step then
    costs one (hidden x 4 hidden) matmul. Weights, biases and gate order (i, f, g, o) are ``nn.LSTM``'s,
    so a layer of ``nn.LSTM`` copies over directly.
    """

    def __init__(self, input_size: int, hidden_size: int, act: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.hidden_size, self.act = hidden_size, act
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, steps, input_size) -> hidden states (batch, steps, hidden_size)."""
        projected = self.ih(x)
        h = c = x.new_zeros(x.shape[0], self.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            i, f, g, o = (projected[:, t] + self.hh(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.act(g)
            h = torch.sigmoid(o) * self.act(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class LSTMRegressor(nn.Module):
    """Stacked LSTM over a window of ``time_steps`` months, then ``Dense(num_outputs)`` on the last step."""

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, hidden_size: int = 4, num_layers: int = 1,
                 cell_activation: str = "tanh", fc_activation: str = "tanh"):
        super().__init__()
        if len(input_shape) != 2:
            raise ValueError(f"input_shape must be (time_steps, n_features), got {tuple(input_shape)}")
        if hidden_size != int(hidden_size) or num_layers != int(num_layers) or min(hidden_size, num_layers) < 1:
            raise ValueError(f"hidden_size and num_layers must be whole numbers >= 1, got {hidden_size}, {num_layers}")
        hidden_size, num_layers = int(hidden_size), int(num_layers)  # 2.0 from a config's 0.5 * a is fine
        cell = activation(cell_activation, "cell_activation")
        self.fc_activation = activation(fc_activation, "fc_activation")
        n_features = int(input_shape[1])
        if cell_activation == "tanh":
            self.lstm: nn.Module = nn.LSTM(n_features, hidden_size, num_layers, batch_first=True)
        else:
            sizes = [n_features] + [hidden_size] * (num_layers - 1)
            self.lstm = nn.Sequential(*(LSTMLayer(size, hidden_size, cell) for size in sizes))
        self.head = nn.Linear(hidden_size, num_outputs)
        bound = 1 / math.sqrt(hidden_size)
        for p in self.lstm.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time_steps, n_features) -> (batch, num_outputs)."""
        hidden = self.lstm(x)
        if isinstance(hidden, tuple):  # nn.LSTM returns (outputs, (h_n, c_n))
            hidden = hidden[0]
        return self.fc_activation(self.head(hidden[:, -1]))
