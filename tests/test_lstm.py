import itertools

import pytest
import torch
from torch import nn

from hpo_tune.models.lstm import ACTIVATIONS, LSTMLayer, LSTMRegressor

STEPS, FEATURES = 5, 4


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


def windows(batch: int = 8) -> torch.Tensor:
    return torch.rand(batch, STEPS, FEATURES)


@pytest.mark.parametrize("cell, fc", list(itertools.product(ACTIVATIONS, ACTIVATIONS)))
def test_output_shape_for_every_activation_pair(cell, fc):
    for num_outputs in (1, 3):
        model = LSTMRegressor((STEPS, FEATURES), num_outputs, hidden_size=3, num_layers=2, cell_activation=cell,
                              fc_activation=fc)
        assert model(windows()).shape == (8, num_outputs)


@pytest.mark.parametrize("cell", ["relu", "sigmoid"])
def test_custom_cells_train(cell):
    model = LSTMRegressor((STEPS, FEATURES), 1, hidden_size=6, num_layers=3, cell_activation=cell)
    assert all(isinstance(layer, LSTMLayer) for layer in model.lstm)
    loss = nn.functional.mse_loss(model(windows()), torch.rand(8, 1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


def copy_of(lstm: nn.LSTM, act=torch.tanh) -> nn.Sequential:
    """LSTMLayers carrying ``lstm``'s weights, layer by layer."""
    layers = []
    for k in range(lstm.num_layers):
        layer = LSTMLayer(lstm.input_size if k == 0 else lstm.hidden_size, lstm.hidden_size, act)
        with torch.no_grad():
            layer.ih.weight.copy_(getattr(lstm, f"weight_ih_l{k}"))
            layer.ih.bias.copy_(getattr(lstm, f"bias_ih_l{k}"))
            layer.hh.weight.copy_(getattr(lstm, f"weight_hh_l{k}"))
            layer.hh.bias.copy_(getattr(lstm, f"bias_hh_l{k}"))
        layers.append(layer)
    return nn.Sequential(*layers)


def test_custom_cell_with_tanh_is_nn_lstm():
    lstm = nn.LSTM(FEATURES, 5, num_layers=3, batch_first=True)
    custom = copy_of(lstm)
    x = windows()
    expected, ours = lstm(x)[0], custom(x)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    expected.sum().backward()
    ours.sum().backward()
    torch.testing.assert_close(custom[0].hh.weight.grad, lstm.weight_hh_l0.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(custom[2].ih.weight.grad, lstm.weight_ih_l2.grad, rtol=1e-5, atol=1e-6)


def test_cell_activation_shapes_the_hidden_state():
    lstm = nn.LSTM(FEATURES, 5, num_layers=1, batch_first=True)
    x = 3 * windows(64) - 1
    relu, sigmoid, tanh = (copy_of(lstm, act)(x) for act in (torch.relu, torch.sigmoid, torch.tanh))
    assert (relu >= 0).all() and (sigmoid > 0).all() and (sigmoid < 1).all()
    assert (tanh < 0).any()  # so the bounds above come from the activation, not from the weights
    assert not torch.allclose(relu, tanh) and not torch.allclose(sigmoid, tanh)


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_first_step_follows_the_keras_equations(name):
    # from h = c = 0: c1 = sigmoid(i) * act(g), h1 = sigmoid(o) * act(c1), gates in nn.LSTM's order i, f, g, o
    act = ACTIVATIONS[name]
    layer, x = LSTMLayer(FEATURES, 5, act), windows()
    i, f, g, o = (layer.ih(x[:, 0]) + layer.hh.bias).chunk(4, dim=1)
    expected = torch.sigmoid(o) * act(torch.sigmoid(i) * act(g))
    torch.testing.assert_close(layer(x)[:, 0], expected)


def test_fc_activation_applies_to_the_output():
    x = 10 * windows(64) - 5
    assert (LSTMRegressor((STEPS, FEATURES), 1, fc_activation="relu")(x) >= 0).all()
    out = LSTMRegressor((STEPS, FEATURES), 1, fc_activation="sigmoid")(x)
    assert ((out > 0) & (out < 1)).all()


@pytest.mark.parametrize("cell", list(ACTIVATIONS))
def test_layers_stack_like_nn_lstm(cell):
    model = LSTMRegressor((STEPS, FEATURES), 1, hidden_size=6, num_layers=3, cell_activation=cell)
    reference = nn.LSTM(FEATURES, 6, num_layers=3, batch_first=True)
    assert sum(p.numel() for p in model.lstm.parameters()) == sum(p.numel() for p in reference.parameters())
    assert model(windows()).shape == (8, 1)
    one_layer = LSTMRegressor((STEPS, FEATURES), 1, hidden_size=6, num_layers=1, cell_activation=cell)
    assert sum(p.numel() for p in one_layer.parameters()) < sum(p.numel() for p in model.parameters())


def test_bad_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"cell_activation.*relu.*sigmoid.*tanh"):
        LSTMRegressor((STEPS, FEATURES), 1, cell_activation="gelu")
    with pytest.raises(ValueError, match=r"fc_activation.*relu.*sigmoid.*tanh"):
        LSTMRegressor((STEPS, FEATURES), 1, fc_activation="Tanh")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMRegressor((STEPS, FEATURES), 1, hidden_size=1.5)
    assert LSTMRegressor((STEPS, FEATURES), 1, hidden_size=2.0)(windows()).shape == (8, 1)  # 0.5 * a from a config
    with pytest.raises(ValueError, match="input_shape"):
        LSTMRegressor((FEATURES,), 1)
