"""Inception Score from class probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np


def inception_score(probs: Any, splits: int = 10, atol: float = 1e-3) -> tuple[float, float]:
    """Inception Score `exp(E_x KL(p(y|x) || p(y)))`, as mean and std over splits.

    The samples are cut into `splits` contiguous parts (`np.array_split`, so sizes may
    differ by one); in each part `p(y)` is the mean of the rows and the score is the
    exponential of the mean KL divergence. As in the original code, the std is the
    population std (`ddof=0`) of the per-split scores. The score ranges from 1 (every
    prediction identical) to the number of classes (confident and evenly spread).

    Published scores come from the 1008-class 2015 graph (`fid_inception()`); scores of
    another classifier (`--inception fashion_mnist`) compare only among themselves.

    Args:
        probs: array-like, shape `(n, num_classes)`. Softmax probabilities; each row must
            sum to 1 within `atol`.
        splits: int. Number of parts, `1 <= splits <= n`. Defaults to `10`.
        atol: float. Tolerance for the row sums (float32 softmax). Defaults to `1e-3`.

    Returns:
        `(mean, std)` of the per-split scores, as Python floats.

    Example:

    ```python
    is_mean, is_std = inception_score(tf.nn.softmax(logits).numpy(), splits=10)
    ```

    Reference:
        Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016
        (arXiv:1606.03498); Barratt & Sharma, "A Note on the Inception Score", 2018.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"`probs` must have shape (n, num_classes). Received: shape={p.shape}")
    if not isinstance(splits, (int, np.integer)) or isinstance(splits, bool) or not (1 <= splits <= p.shape[0]):
        raise ValueError(f"`splits` must be an int in [1, n={p.shape[0]}]. Received: splits={splits!r}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("`probs` must be finite and non-negative.")
    row_sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    if abs(row_sums[worst] - 1.0) > atol:
        raise ValueError(
            f"Each row of `probs` must sum to 1 (within atol={atol}); did you pass logits? "
            f"Received: row {worst} sums to {row_sums[worst]:.6f}"
        )
    scores = []
    for part in np.array_split(p, int(splits), axis=0):
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log(0 / q) = 0; where p > 0 the marginal is > 0 too.
        safe_p = np.where(part > 0, part, 1.0)
        safe_m = np.where(part > 0, marginal, 1.0)
        kl = np.sum(np.where(part > 0, part * (np.log(safe_p) - np.log(safe_m)), 0.0), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))
