import numpy as np
import pytest

from keras_sagan.metrics import inception_score


def test_uniform_predictions_score_one():
    mean, std = inception_score(np.full((100, 10), 0.1), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_confident_evenly_spread_predictions_score_num_classes():
    k = 10
    labels = np.tile(np.arange(k), 50)  # Every split of 50 holds each class 5 times.
    one_hot = np.eye(k)[labels]
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(k, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-9)
    # Slightly unsure predictions (0.982 / 0.002 each): marginal still uniform, so
    # IS = exp(sum_y p log(K p)), below K.
    soft = 0.98 * one_hot + 0.02 / k
    row = soft[0]
    mean, _ = inception_score(soft, splits=10)
    assert mean == pytest.approx(np.exp(np.sum(row * np.log(k * row))), rel=1e-12)
    assert mean < k


def test_single_class_scores_one_and_uneven_splits_work():
    probs = np.eye(5)[np.zeros(23, dtype=int)]
    mean, _ = inception_score(probs, splits=4)  # Splits of 6, 6, 6, 5.
    assert mean == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.random.default_rng(0).standard_normal((20, 5)) + 5.0, splits=2)
    with pytest.raises(ValueError, match=r"splits.*n=4.*splits=5"):
        inception_score(np.full((4, 2), 0.5), splits=5)
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5]]), splits=1)
    with pytest.raises(ValueError, match="shape"):
        inception_score(np.full((4,), 0.25), splits=1)
