import numpy as np
import pytest

from keras_sagan.metrics import StatisticsFile, StreamingStatistics


def _data(n=300, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    # A large offset against the spread is where naive sum-of-squares formulas fail.
    return 1e4 + rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim))


def test_matches_numpy_on_uneven_batches():
    x = _data()
    stats = StreamingStatistics(6)
    # float32 batches lose precision at 1e4 before they reach us; feed float64 only.
    for start, size in ((0, 1), (1, 7), (8, 0), (8, 150), (158, 13), (171, 129)):
        stats.update(x[start : start + size])
    assert stats.count == 300
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(stats.covariance, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    assert stats.mean.dtype == np.float64 and stats.covariance.dtype == np.float64
    np.testing.assert_array_equal(stats.covariance, stats.covariance.T)


def test_accepts_float32_and_single_rows():
    x = np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32)
    stats = StreamingStatistics(3)
    for row in x:
        stats.update(row[None])
    np.testing.assert_allclose(
        stats.covariance,
        np.cov(x.astype(np.float64), rowvar=False),
        rtol=1e-12,
        atol=1e-12,
    )


def test_save_load_round_trip_and_resume(tmp_path):
    x = _data(seed=2)
    stats = StreamingStatistics(6)
    stats.update(x[:100])
    path = tmp_path / "stats.npz"
    StatisticsFile.from_streaming(stats).save(path)
    with np.load(path) as data:
        assert {"count", "mu", "sigma"} <= set(data.files)
        assert int(data["count"]) == 100
    loaded = StatisticsFile.load(path).to_streaming()
    assert loaded.count == 100 and loaded.dim == 6
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_allclose(loaded.covariance, stats.covariance, rtol=1e-14)
    loaded.update(x[100:])
    np.testing.assert_allclose(loaded.covariance, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)


def test_save_with_one_sample_round_trips(tmp_path):
    stats = StreamingStatistics(2)
    stats.update([[1.0, 2.0]])
    StatisticsFile.from_streaming(stats).save(tmp_path / "one.npz")
    loaded = StatisticsFile.load(tmp_path / "one.npz").to_streaming()
    loaded.update([[3.0, 6.0]])
    np.testing.assert_allclose(loaded.covariance, np.cov([[1.0, 2.0], [3.0, 6.0]], rowvar=False))


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="dim"):
        StreamingStatistics(0)
    stats = StreamingStatistics(4)
    with pytest.raises(ValueError, match=r"\(batch, 4\).*\(3, 5\)"):
        stats.update(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = stats.covariance
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.full((2, 4), np.nan))
    np.savez(tmp_path / "bad.npz", mu=np.zeros(4), sigma=np.eye(4))  # TTUR style: no count to resume from.
    with pytest.raises(ValueError, match="count"):
        StatisticsFile.load(tmp_path / "bad.npz").to_streaming()
