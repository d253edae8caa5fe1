import numpy as np
import pytest

from keras_sagan.metrics import kernel_inception_distance


def _reference_unbiased_mmd2(x, y):
    """Written from the formula with explicit loops, independently of the library."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


def test_matches_reference_on_a_small_case():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 5)), 0.3 + rng.standard_normal((7, 5))
    # One subset of all rows: a permutation, which the estimate does not depend on.
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=7)
    assert mean == pytest.approx(_reference_unbiased_mmd2(x, y), rel=1e-12)
    assert std == 0.0


def test_same_distribution_near_zero_and_shift_clearly_positive():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    same_mean, same_std = kernel_inception_distance(x, y, num_subsets=50, subset_size=100)
    shifted_mean, _ = kernel_inception_distance(x, y + 0.3, num_subsets=50, subset_size=100)
    assert shifted_mean > 0.1
    assert abs(same_mean) < 0.05 * shifted_mean
    assert same_std > 0
    identical_mean, _ = kernel_inception_distance(x, x, num_subsets=50, subset_size=100)
    assert abs(identical_mean) < 0.1 * shifted_mean


def test_unbiased_over_many_independent_draws():
    # A biased (V-statistic) estimator would average about 2 (E k(x,x) - E k(x,x')) / m,
    # i.e. ~0.3 here, hundreds of standard errors away from 0.
    rng = np.random.default_rng(2)
    values = np.array(
        [
            kernel_inception_distance(
                rng.standard_normal((50, 8)),
                rng.standard_normal((50, 8)),
                num_subsets=1,
            )[0]
            for _ in range(200)
        ]
    )
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean()) < 4 * standard_error
    assert (values < 0).any()  # Single estimates go below 0: the price of no bias.


def test_subset_size_is_clamped_and_seeded():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((45, 4))
    a = kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=7)
    b = kernel_inception_distance(x, y, num_subsets=5, subset_size=30, seed=7)
    assert a == b
    assert np.all(np.isfinite(a))


def test_errors():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match=r"feats1.shape=\(10, 4\), feats2.shape=\(10, 3\)"):
        kernel_inception_distance(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        kernel_inception_distance(x, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="num_subsets"):
        kernel_inception_distance(x, x, num_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(x, x, subset_size=1)
