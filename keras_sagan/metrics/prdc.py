"""Precision, recall, density and coverage of generated features against real ones (k-nearest-neighbour balls).

Each sample's ball has the radius of its distance to its k-th nearest neighbour in its own set
(itself excluded). With `R` real and `F` fake feature vectors:

- precision: the share of fakes inside at least one real ball (Kynkäänniemi et al. 2019);
- recall: the share of reals inside at least one fake ball (same paper);
- density: the number of real balls holding each fake, divided by k, averaged over fakes
  (Naeem et al. 2020; 1 when fakes are distributed like reals, above 1 when they crowd);
- coverage: the share of real balls holding at least one fake (same paper).

Distances are Euclidean, computed in float64 in row chunks so memory stays `chunk x n`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_sagan.errors import UsageError

DEFAULT_K = 5
"""Nearest neighbours of the balls, as Naeem et al. and StudioGAN use."""
_CHUNK = 1024


def _distances(x: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    d2 = np.sum(x * x, axis=1, keepdims=True) + y_sq[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.maximum(d2, 0.0))


def _kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself is the 0-th)."""
    sq = np.sum(x * x, axis=1)
    radii = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _CHUNK):
        d = _distances(x[start : start + _CHUNK], x, sq)
        radii[start : start + _CHUNK] = np.partition(d, k, axis=1)[:, k]
    return radii


def precision_recall_density_coverage(real: Any, fake: Any, k: int = DEFAULT_K) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` features against `real` ones.

    Args:
        real: array `(n_real, d)`. Real feature vectors.
        fake: array `(n_fake, d)`. Generated feature vectors.
        k: int. Nearest neighbour that sets each ball's radius; each set needs more than `k` rows.
            Defaults to `5`.

    Returns:
        `{"precision", "recall", "density", "coverage"}` as floats.

    Raises:
        UsageError: one line: `k` not below either set's size, or mismatched shapes.

    Example:

    ```python
    scores = precision_recall_density_coverage(real_features, fake_features, k=5)
    ```

    Reference:
        Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
        Models", NeurIPS 2019; Naeem et al., "Reliable Fidelity and Diversity Metrics for
        Generative Models", ICML 2020.
    """
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UsageError(
            f"`real` and `fake` must have shapes (n, d) with the same d; received: real.shape={real.shape}, "
            f"fake.shape={fake.shape}"
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UsageError(f"`k` must be an int >= 1; received: k={k!r}")
    smallest = min(real.shape[0], fake.shape[0])
    if k >= smallest:
        raise UsageError(
            f"`k` must be below the number of samples of each set ({real.shape[0]} real, {fake.shape[0]} generated); "
            f"received: k={k}"
        )
    real_radii = _kth_neighbour_radii(real, k)
    fake_radii = _kth_neighbour_radii(fake, k)
    fake_sq = np.sum(fake * fake, axis=1)
    balls_holding = np.zeros(fake.shape[0])  # Per fake: real balls it is in.
    in_some_fake_ball = np.zeros(real.shape[0], bool)  # Per real: inside a fake ball (recall).
    covered = np.zeros(real.shape[0], bool)  # Per real ball: holds a fake (coverage).
    for start in range(0, real.shape[0], _CHUNK):
        stop = start + _CHUNK
        d = _distances(real[start:stop], fake, fake_sq)  # (chunk, n_fake)
        inside_real = d < real_radii[start:stop, None]
        balls_holding += inside_real.sum(axis=0)
        covered[start:stop] = d.min(axis=1) < real_radii[start:stop]
        in_some_fake_ball[start:stop] = (d < fake_radii[None, :]).any(axis=1)
    return {
        "precision": float(np.mean(balls_holding > 0)),
        "recall": float(np.mean(in_some_fake_ball)),
        "density": float(np.mean(balls_holding) / k),
        "coverage": float(np.mean(covered)),
    }
