import numpy as np
import pytest
from scipy import stats

from hpo_tune.errors import ConfigError
from hpo_tune.space import Choice, Float, Int, LogFloat, SearchSpace

SPACE = {
    "trainer": {"lr": {"type": "log_float", "low": 1e-3, "high": 0.5},
                "batch_size": {"type": "choice", "values": [32, 64, "auto"]}},
    "model": {"dropout": {"type": "float", "low": 0.0, "high": 0.6},
              "layers": {"type": "int", "low": 1, "high": 9, "step": 2}},
}


def test_builds_typed_dimensions_named_by_config_path():
    space = SearchSpace.from_config(SPACE)
    assert list(space) == ["trainer.lr", "trainer.batch_size", "model.dropout", "model.layers"]
    assert space["trainer.lr"] == LogFloat(1e-3, 0.5)
    assert space["trainer.batch_size"] == Choice((32, 64, "auto"))
    assert space["model.dropout"] == Float(0.0, 0.6)
    assert space["model.layers"] == Int(1, 9, step=2)


@pytest.mark.parametrize(("dimension", "reference"), [
    (Float(-5.0, 5.0), lambda: stats.uniform(-5.0, 10.0)),
    (LogFloat(1e-3, 0.5), lambda: stats.loguniform(1e-3, 0.5)),
    (Int(3, 9), lambda: stats.randint(3, 10)),
    (Choice(("a", "b", "c")), lambda: stats.randint(0, 3)),
])
def test_draws_are_scipys_distributions_draws(dimension, reference):
    """The generator's own methods, for speed: the values scipy's frozen distributions give (to rounding)."""
    for seed in range(20):
        expected = reference().rvs(random_state=np.random.default_rng(seed))
        drawn = dimension.sample(np.random.default_rng(seed))
        assert drawn == (dimension.values[expected] if isinstance(dimension, Choice) else pytest.approx(expected))


def test_samples_lie_in_their_dimensions_and_parse_back_from_strings():
    space = SearchSpace.from_config(SPACE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        params = space.sample(rng)
        assert all(space[name].contains(value) for name, value in params.items()), params
        assert space.parse({k: str(v) for k, v in params.items()}) == params


def test_log_float_samples_are_log_uniform():
    draws = np.array([LogFloat(1e-4, 1.0).sample(np.random.default_rng(i)) for i in range(2000)])
    # a quarter of the log-range lies below 1e-3
    assert abs(np.mean(draws < 1e-3) - 0.25) < 0.04


def test_grids():
    assert LogFloat(1e-3, 1e-1).grid(3) == pytest.approx([1e-3, 1e-2, 1e-1])
    assert Float(0.0, 1.0).grid(3) == [0.0, 0.5, 1.0]
    assert Int(1, 9, step=2).grid(10) == [1, 3, 5, 7, 9]
    assert Int(1, 100).grid(3) == [1, 50, 100]
    assert Choice(("a", "b")).grid(7) == ["a", "b"]


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ({"x": {"type": "choice", "values": []}}, "space.x.values", "non-empty"),
        ({"x": {"type": "float", "low": 2.0, "high": 1.0}}, "space.x.low", "must not exceed"),
        ({"x": {"type": "int", "low": 5, "high": 1}}, "space.x.low", "must not exceed"),
        ({"x": {"type": "log_float", "low": 0.0, "high": 1.0}}, "space.x.low", "low > 0"),
        ({"x": {"type": "int", "low": 1, "high": 3, "step": 0}}, "space.x.step", "positive"),
        ({"x": {"type": "gaussian", "low": 0, "high": 1}}, "space.x.type", "unknown dimension type"),
        ({"x": {"type": "float", "low": "a", "high": 1}}, "space.x.low", "must be a number"),
        ({"x": {"type": "float", "low": 0, "high": 1, "lo": 3}}, "space.x.lo", "not a field"),
        ({"a": {"b": 3}}, "space.a.b", "expected a dimension"),
        ({}, "space", "empty"),
    ],
)
def test_invalid_specs_name_the_key(spec, key, words):
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_config(spec)
    assert caught.value.key == key
    assert words in str(caught.value)
