"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel."""

from __future__ import annotations

from typing import Any

import numpy as np


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate between equally sized samples `x` and `y`."""
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    feats1: Any,
    feats2: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (KID) between two sets of features.

    For each of `num_subsets` rounds, `subset_size` rows are drawn without replacement
    from each set and the unbiased MMD^2 estimate with kernel
    `k(x, y) = (x . y / d + 1)^3` is computed:

        MMD^2 = sum_{i != j} k(x_i, x_j) / (m(m-1)) + sum_{i != j} k(y_i, y_j) / (m(m-1))
                - 2 sum_{i, j} k(x_i, y_j) / m^2

    The estimate is unbiased, so for two samples of one distribution it averages to 0
    and single values can be negative. `subset_size` is clamped to `min(n1, n2)`: the
    estimate stays unbiased at any size, only its variance grows as subsets shrink.
    When both sets are no larger than `subset_size`, every round uses all rows (in a
    different order), so the std is ~0. Computation is in float64.

    Args:
        feats1: array-like, shape `(n1, d)`. First set of features (e.g. real).
        feats2: array-like, shape `(n2, d)`. Second set of features (e.g. generated).
        num_subsets: int. Number of random subsets. Defaults to `100`.
        subset_size: int. Rows per subset, clamped to `min(n1, n2)`; at least 2 rows
            must remain. Defaults to `1000`.
        seed: int. Seed of the subsets, drawn as clean-fid draws them (`np.random.RandomState(seed)`,
            `feats2`'s subset first), so `kernel_distance` after `np.random.seed(seed)` gives the
            same mean. Defaults to `0`.

    Returns:
        `(mean, std)` of the MMD^2 estimates over subsets (population std), as floats.

    Example:

    ```python
    kid_mean, kid_std = kernel_inception_distance(real_features, fake_features)
    ```

    Reference:
        Bińkowski et al., "Demystifying MMD GANs", ICLR 2018 (arXiv:1801.01401).
    """
    x = np.asarray(feats1, dtype=np.float64)
    y = np.asarray(feats2, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            "`feats1` and `feats2` must have shapes (n1, d) and (n2, d). Received: "
            f"feats1.shape={x.shape}, feats2.shape={y.shape}"
        )
    if not isinstance(num_subsets, (int, np.integer)) or num_subsets < 1:
        raise ValueError(f"`num_subsets` must be a positive int. Received: {num_subsets!r}")
    if not isinstance(subset_size, (int, np.integer)) or subset_size < 2:
        raise ValueError(f"`subset_size` must be an int >= 2. Received: {subset_size!r}")
    m = min(int(subset_size), x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(
            f"KID needs at least 2 rows in each set. Received: feats1.shape={x.shape}, feats2.shape={y.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("`feats1` and `feats2` must be finite.")
    # clean-fid's draws: NumPy's legacy generator, the second set's subset first. With the same
    # seed (`np.random.seed(seed)` before `cleanfid.fid.kernel_distance`) the subsets are the same.
    rng = np.random.RandomState(seed)
    mmds = np.empty((int(num_subsets),), dtype=np.float64)
    for i in range(int(num_subsets)):
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        mmds[i] = _unbiased_mmd2(xs, ys)
    return float(mmds.mean()), float(mmds.std())
