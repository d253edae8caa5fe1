import numpy as np
import pytest
import scipy.linalg

from keras_sagan.metrics import frechet_distance


def _random_spd(dim, rng, condition=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * np.linspace(1.0, condition, dim)) @ q.T


def test_commuting_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3.0, 5), rng.uniform(0.1, 3.0, 5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_general_case_matches_scipy_sqrtm():
    rng = np.random.default_rng(1)
    s1, s2 = _random_spd(12, rng), _random_spd(12, rng, condition=5.0)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(covmean))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # The distance is symmetric in its two arguments.
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)


def test_identical_full_rank_is_zero():
    rng = np.random.default_rng(2)
    s, mu = _random_spd(30, rng), rng.standard_normal(30)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9


def test_identical_rank_deficient_is_zero():
    # 20 samples in 64 dims: the covariance has rank 19, as with few samples of 2048-d
    # Inception features. sqrtm of the singular product is ill-conditioned there.
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal((20, 64)))  # Non-negative like post-ReLU features.
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    assert np.linalg.matrix_rank(sigma) == 19
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_rank_deficient_pair_is_finite_and_non_negative():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((10, 32)), 0.5 + rng.standard_normal((10, 32))
    d = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert np.isfinite(d) and d > 0


def test_zero_covariances_reduce_to_mean_distance():
    d = frechet_distance([0.0, 0.0], np.zeros((2, 2)), [3.0, 4.0], np.zeros((2, 2)))
    assert d == pytest.approx(25.0)


def test_shape_and_value_errors():
    eye = np.eye(3)
    with pytest.raises(ValueError, match=r"mu1.shape=\(3,\), mu2.shape=\(4,\)"):
        frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"sigma2.shape=\(2, 2\)"):
        frechet_distance(np.zeros(3), eye, np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="mu1.shape"):
        frechet_distance(np.zeros((3, 1)), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(np.zeros(3), np.diag([1.0, 1.0, -0.5]), np.zeros(3), eye)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(np.zeros(2), [[1.0, 0.5], [0.0, 1.0]], np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.array([np.nan, 0, 0]), eye, np.zeros(3), eye)
