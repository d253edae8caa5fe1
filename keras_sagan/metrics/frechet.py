"""Fréchet distance between two Gaussians (the FID formula)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_mean_and_covariance(mu: Any, sigma: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"`mu{name}` must be a vector. Received: mu{name}.shape={mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"`sigma{name}` must have shape ({mu.shape[0]}, {mu.shape[0]}) to match "
            f"`mu{name}`. Received: mu{name}.shape={mu.shape}, sigma{name}.shape={sigma.shape}"
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"`mu{name}` and `sigma{name}` must be finite.")
    return mu, sigma


def _psd_eigh(sigma: np.ndarray, eps: float, name: str, vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigendecomposition of a covariance; rejects clearly non-PSD input, clips round-off."""
    scale = max(float(np.max(np.abs(sigma))), np.finfo(np.float64).tiny)
    if np.max(np.abs(sigma - sigma.T)) > eps * scale:
        raise ValueError(f"`sigma{name}` must be symmetric (within eps={eps}).")
    sym = (sigma + sigma.T) / 2.0
    if vectors:
        eigvals, eigvecs = np.linalg.eigh(sym)
    else:
        eigvals, eigvecs = np.linalg.eigvalsh(sym), None
    if eigvals.size and eigvals[0] < -eps * max(eigvals[-1], scale):
        raise ValueError(
            f"`sigma{name}` must be positive semi-definite; its smallest eigenvalue is "
            f"{eigvals[0]:.3e} (largest {eigvals[-1]:.3e}, eps={eps})."
        )
    return np.clip(eigvals, 0.0, None), eigvecs


def _trace_sqrt_psd(matrix: np.ndarray) -> float:
    """Tr sqrt(M) for a symmetric PSD `matrix`, ignoring eigenvalues at round-off level."""
    eigvals = np.linalg.eigvalsh((matrix + matrix.T) / 2.0)
    # Eigenvalues within `n * machine_eps * ||M||` of zero are round-off (the same
    # tolerance as `np.linalg.matrix_rank`); the square root would blow them up.
    tol = matrix.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(eigvals))), 0.0)
    return float(np.sum(np.sqrt(eigvals[eigvals > tol])))


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    `d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`; on Inception
    pool3 statistics this is the FID.

    The product `sigma1 sigma2` is not symmetric, so a general matrix square root
    (`scipy.linalg.sqrtm`, as in the TTUR and pytorch-fid code) can return complex
    values, or NaN/Inf when a covariance is singular, e.g. with fewer samples than the
    2048 feature dimensions. This implementation stays in symmetric real arithmetic:
    `sigma1 sigma2` is similar to `S = sqrt(sigma1) sigma2 sqrt(sigma1)` (AB and BA share
    their non-zero eigenvalues), and `S` is symmetric PSD. So `sqrt(sigma1)` is taken from
    a symmetric eigendecomposition (tiny negative eigenvalues clipped to 0), and the trace
    term is `sum(sqrt(eigvalsh(S)))`. Everything runs in float64.

    Args:
        mu1: array-like, shape `(d,)`. Mean of the first distribution.
        sigma1: array-like, shape `(d, d)`. Covariance of the first distribution.
        mu2: array-like, shape `(d,)`. Mean of the second distribution.
        sigma2: array-like, shape `(d, d)`. Covariance of the second distribution.
        eps: float. Relative tolerance for checking the covariances: an asymmetry above
            `eps * max|sigma|` or an eigenvalue below `-eps * largest eigenvalue` raises
            `ValueError`; smaller negative eigenvalues are round-off and clipped to 0.
            (Unlike TTUR's `eps`, nothing is ever added to the diagonal: it is not
            needed.) Defaults to `1e-6`.

    Returns:
        The distance as a Python float. It can be a few ulps below 0 for identical inputs.

    Example:

    ```python
    fid = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
    ```

    Reference:
        Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
        Nash Equilibrium", NeurIPS 2017 (arXiv:1706.08500); Dowson & Landau, "The Fréchet
        distance between multivariate normal distributions", 1982.
    """
    mu1, sigma1 = _as_mean_and_covariance(mu1, sigma1, "1")
    mu2, sigma2 = _as_mean_and_covariance(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"The two distributions must have the same dimension. Received: "
            f"mu1.shape={mu1.shape}, mu2.shape={mu2.shape}"
        )
    if not eps >= 0:
        raise ValueError(f"`eps` must be >= 0. Received: eps={eps!r}")
    eigvals1, eigvecs1 = _psd_eigh(sigma1, eps, "1")
    _psd_eigh(sigma2, eps, "2", vectors=False)  # Validation only.
    sqrt_sigma1 = (eigvecs1 * np.sqrt(eigvals1)) @ eigvecs1.T
    trace_sqrt_product = _trace_sqrt_psd(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product)
