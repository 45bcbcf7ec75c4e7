"""kappa, seed 001's accuracy-and-log-loss objective (eqs. 11 and 12), against hand-computed values."""

import math

import pytest

from hpo_tune.training.kappa import DEFAULT_LAMBDA, kappa


def test_original_variant_by_hand():
    # eq. 11: 0.9 - 0.5 * ln(0.3) = 0.9 + 0.5 * 1.2039728 = 1.5019864
    assert kappa(0.9, 0.3, "original", lam=0.5) == pytest.approx(1.5019864, abs=1e-7)
    # 0.6 - 0.2 * ln(0.5) = 0.6 + 0.2 * 0.6931472 = 0.7386294
    assert kappa(0.6, 0.5, "original", lam=0.2) == pytest.approx(0.7386294, abs=1e-7)


def test_improved_variant_by_hand():
    # eq. 12: 0.9^2 - ln(0.3) / 0.5 = 0.81 + 2.4079456 = 3.2179456
    assert kappa(0.9, 0.3, "improved", lam=0.5) == pytest.approx(3.2179456, abs=1e-7)
    # 0.6^2 - ln(0.5) / 0.2 = 0.36 + 3.4657359 = 3.8257359
    assert kappa(0.6, 0.5, lam=0.2) == pytest.approx(3.8257359, abs=1e-7)


def test_default_is_the_improved_variant_with_the_documented_lambda():
    assert kappa(0.9, 0.3) == kappa(0.9, 0.3, "improved", DEFAULT_LAMBDA)


@pytest.mark.parametrize("variant", ["original", "improved"])
def test_zero_when_the_loss_reaches_the_accuracy(variant):
    assert kappa(0.4, 0.5, variant) == 0.0
    assert kappa(0.5, 0.5, variant) == 0.0
    assert kappa(0.1, math.inf, variant) == 0.0  # a diverged training
    assert kappa(0.5, 0.49, variant) > 0.0


def test_lower_loss_scores_higher_and_the_improved_variant_weighs_it_more():
    original = kappa(0.9, 0.2, "original") - kappa(0.9, 0.3, "original")
    improved = kappa(0.9, 0.2, "improved") - kappa(0.9, 0.3, "improved")
    assert 0 < original < improved


def test_a_zero_loss_stays_finite():
    assert math.isfinite(kappa(1.0, 0.0)) and kappa(1.0, 0.0) > kappa(1.0, 1e-6)


@pytest.mark.parametrize("args, message", [
    ((0.9, 0.3, "squared"), "unknown kappa variant"),
    ((90.0, 0.3), "accuracy must be a fraction"),
    ((0.9, -0.1), "loss must be"),
    ((0.9, math.nan), "loss must be"),
    ((0.9, 0.3, "improved", 0.0), "lambda must be"),
    ((0.9, 0.3, "original", 1.5), "lambda must be"),
])
def test_rejects_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        kappa(*args)
