"""Streaming mean and covariance of feature vectors, in float64."""

from __future__ import annotations

from typing import Any

import numpy as np


class StreamingStatistics:
    """Running mean and covariance of `dim`-dimensional features, fed batch by batch.

    Each batch is reduced to its own count, mean and centred sum of outer products
    (`M2 = sum_i (x_i - mean_b)(x_i - mean_b)^T`), all in float64, and merged into the
    running totals with Chan et al.'s parallel update:

        delta = mean_b - mean
        mean += delta * n_b / n
        M2   += M2_b + outer(delta, delta) * n_a * n_b / n

    Why this is numerically fine: only centred quantities are ever summed, so there is
    none of the catastrophic cancellation of `sum(x x^T) / n - mu mu^T` when the mean is
    large against the spread (Inception pool3 features are post-ReLU and non-negative,
    with means of the order of their standard deviations). Float64 accumulation leaves a
    relative error around `1e-16 * number_of_batches`, far below the sampling noise of
    FID. Memory is `O(dim^2)`: 50k samples never sit in memory, only one batch at a time.

    Args:
        dim: int. Feature dimension (2048 for Inception pool3).

    Example:

    ```python
    stats = StreamingStatistics(2048)
    for images in dataset:
        stats.update(extractor(images))
    mu, sigma = stats.mean, stats.covariance
    StatisticsFile.from_streaming(stats).save("celeba64_train.npz")  # Files: statistics_file.py.
    ```

    Reference:
        Chan, Golub, LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing
        Sample Variances", 1979.
    """

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"`dim` must be a positive int. Received: dim={dim!r}")
        self.dim = int(dim)
        self._count = 0
        self._mean = np.zeros((self.dim,), dtype=np.float64)
        self._m2 = np.zeros((self.dim, self.dim), dtype=np.float64)

    def update(self, features: Any) -> None:
        """Adds a batch of feature vectors.

        Args:
            features: array-like of shape `(batch, dim)` (NumPy array or tensor).
                An empty batch is a no-op.
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"`features` must have shape (batch, {self.dim}). Received: shape={x.shape}")
        n_b = x.shape[0]
        if n_b == 0:
            return
        if not np.all(np.isfinite(x)):
            raise ValueError("`features` contains NaN or Inf values.")
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        n_a = self._count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / n)
        self._m2 += m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self._count = n

    @property
    def count(self) -> int:
        """Number of feature vectors seen so far."""
        return self._count

    @property
    def mean(self) -> np.ndarray:
        """Mean vector, shape `(dim,)`, float64 (a copy)."""
        if self._count < 1:
            raise ValueError("The mean needs at least 1 sample. Received: count=0")
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased (`n - 1`) covariance matrix, shape `(dim, dim)`, float64."""
        if self._count < 2:
            raise ValueError(f"The covariance needs at least 2 samples. Received: count={self._count}")
        sigma = self._m2 / (self._count - 1)
        # Merging adds the same outer products on both sides; symmetrise away round-off.
        return (sigma + sigma.T) / 2.0

    @classmethod
    def from_moments(cls, mean: Any, covariance: Any, count: int) -> StreamingStatistics:
        """The statistics of `count` samples with this mean and (unbiased) covariance, ready for `update`."""
        mean = np.asarray(mean, dtype=np.float64)
        stats = cls(mean.shape[0])
        stats._count = int(count)
        stats._mean = mean.copy()
        stats._m2 = np.asarray(covariance, dtype=np.float64) * max(stats._count - 1, 0)
        return stats

    def __repr__(self) -> str:
        return f"StreamingStatistics(dim={self.dim}, count={self._count})"
