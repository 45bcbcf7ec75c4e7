"""The hpo sweeper's search space, read from Hydra's override grammar (``hpo_tune.sweeper.space``), and how
the plugin has Hydra hand it ``hydra.sweeper.params`` from the command line."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Float, Int, LogFloat
from hpo_tune.sweeper.space import override_value, sweep_space
from hydra_plugins.hpo_sweeper.hpo_sweeper import _as_text


def test_each_sweep_becomes_its_dimension_and_plain_values_stay_fixed():
    swept = sweep_space({"lr": "tag(log, interval(1e-4, 1e-1))", "layers": "int(interval(1, 4))",
                         "act": "choice(relu, tanh)", "width": "range(8, 40, 8)", "drop": "interval(0, 0.5)",
                         "epochs": 3}, ["seed=1", "+extra=a,b", "model.depth=2"])
    assert dict(swept.space) == {"lr": LogFloat(1e-4, 0.1), "layers": Int(1, 4), "act": Choice(("relu", "tanh")),
                                 "width": Int(8, 32, 8), "drop": Float(0.0, 0.5), "extra": Choice(("a", "b"))}
    assert swept.fixed == ("seed=1", "model.depth=2", "epochs=3")
    overrides = swept.overrides({"lr": 0.01, "layers": 2, "act": "relu", "width": 16, "drop": 0.1, "extra": "b"})
    assert overrides[-1] == "+extra='b'"  # the + kept: the app's config lacks the key
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)}
    assert parsed == {"seed": 1, "model.depth": 2, "epochs": 3, "lr": 0.01, "layers": 2, "act": "relu",
                      "width": 16, "drop": 0.1, "extra": "b"}


@pytest.mark.parametrize("value", ["a b", "it's", "1", "true", "x=y", 3, 2.5, True, None])
def test_a_parameter_value_reaches_the_app_with_its_type(value):
    (parsed,) = OverridesParser.create().parse_overrides([f"key={override_value(value)}"])
    assert parsed.value() == value and type(parsed.value()) is type(value)


@pytest.mark.parametrize(("params", "key", "words"), [
    ({"act": "chice(relu, tanh)"}, "params.act", "Unknown function 'chice'"),
    ({"lr": "interval(0.1, 0.01)"}, "params.lr", "start must be below the end"),
    ({"lr": "tag(log, interval(0, 1))"}, "params.lr", "positive start"),
    ({"act": "choice(relu, relu)"}, "params.act", "distinct"),
    ({"f": "glob(*)"}, "params.f", "cannot be searched"),
    ({"epochs": 3}, "params", "nothing to tune"),
])
def test_a_bad_entry_names_its_key(params, key, words):
    with pytest.raises(ConfigError) as raised:
        sweep_space(params, [])
    assert raised.value.key == key and words in str(raised.value)


@pytest.mark.parametrize(("line", "as_text"), [
    ("hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-1))",
     "++hydra.sweeper.params.lr='tag(log, interval(1e-4, 1e-1))'"),
    ("hydra.sweeper.params.act=chice(relu, 'a b')", "++hydra.sweeper.params.act='chice(relu, \\'a b\\')'"),
    ("+hydra.sweeper.params.w=1,2", "++hydra.sweeper.params.w='1,2'"),
    ("hydra.sweeper.params.lr='interval(0, 1)'", "++hydra.sweeper.params.lr='interval(0, 1)'"),
    ("hydra.sweeper.strategy_options.n_initial=5", "++hydra.sweeper.strategy_options.n_initial=5"),
    ("hydra.sweeper.n_trials=8", "hydra.sweeper.n_trials=8"),
    ("lr=interval(0, 1)", "lr=interval(0, 1)"),
])
def test_the_command_line_hands_params_to_the_sweeper_as_text(line, as_text):
    assert _as_text(line) == as_text
    if as_text.startswith("++hydra.sweeper.params"):  # Hydra reads it back as the text the sweeper parses
        (parsed,) = OverridesParser.create().parse_overrides([as_text])
        assert not parsed.is_sweep_override() and isinstance(parsed.value(), str)
