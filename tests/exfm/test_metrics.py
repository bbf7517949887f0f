"""NE, AUC, log loss and transfer ratio against closed forms and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from zoo.exfm.metrics import auc, binary_entropy, log_loss, normalized_entropy, transfer_ratio


def test_ne_of_the_constant_base_rate_predictor_is_one():
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.23).astype(float)
    rate = labels.mean()
    constant = np.full_like(labels, math.log(rate / (1 - rate)))
    assert normalized_entropy(labels, constant) == pytest.approx(1.0, abs=1e-12)
    # a predictor of a wrong constant is worse than the base rate
    assert normalized_entropy(labels, np.zeros_like(labels)) > 1.0


def test_log_loss_matches_the_definition_and_is_stable():
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    logits = np.array([2.0, -1.0, -0.5, 800.0])
    p = 1 / (1 + np.exp(-logits[:3]))
    direct = -(labels[:3] * np.log(p) + (1 - labels[:3]) * np.log(1 - p))
    assert log_loss(labels, logits) == pytest.approx((direct.sum() + 800.0) / 4, rel=1e-12)
    assert binary_entropy(0.5) == pytest.approx(math.log(2))


def test_auc_equals_the_pairwise_count_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 60)
    scores = rng.integers(0, 6, 60).astype(float)  # many ties
    pairs = [(s1 > s0) + 0.5 * (s1 == s0) for (s1, y1), (s0, y0) in itertools.product(zip(scores, labels), repeat=2) if y1 == 1 and y0 == 0]
    assert auc(labels, scores) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert math.isnan(auc(np.ones(5), np.arange(5.0)))


def test_transfer_ratio_and_errors():
    assert transfer_ratio(0.90, 0.87, 0.80) == pytest.approx(0.3)
    assert math.isnan(transfer_ratio(0.90, 0.87, 0.95))  # the FM does not beat the VM: undefined
    with pytest.raises(ValueError, match="same non-empty shape"):
        log_loss(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="rate must be in"):
        binary_entropy(1.5)
