"""`evaluate_generator`: FID, Inception Score, KID and precision/recall/density/coverage of a generator.

It samples the generator, reduces the features of its images to `feature_stats.StreamingStatistics`
batch by batch, and computes each metric with its own module (`frechet`, `inception_score`, `kid`,
`prdc`) against real statistics.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np

from keras_sagan import backend
from keras_sagan.metrics.feature_stats import (
    MAX_KID_FEATURES,
    RealStatistics,
    StatisticsFile,
    StreamingStatistics,
    compute_dataset_statistics,
    resolve_real_statistics,
)
from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.inception_score import inception_score
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.networks import Extractor, extract_features
from keras_sagan.metrics.prdc import DEFAULT_K, precision_recall_density_coverage
from keras_sagan.models.sampling import class_cycle, sample

PRDC_KEYS = ("precision", "recall", "density", "coverage")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _is_dataset(value: Any) -> bool:
    if isinstance(value, (StatisticsFile, StreamingStatistics, str, os.PathLike, tuple, list, np.ndarray)):
        return False
    return isinstance(value, Iterable)  # tf.data.Dataset included


def _sampler(generator: keras.Model, labels_fn: Callable | None) -> Callable[[np.random.Generator, int, int], Any]:
    """`draw(rng, n, start)`: `n` images of the generator in inference mode, from `N(0, I)` latents of `rng`.

    The one place evaluation decides how a generator is sampled: float32 latents, then, for a conditional
    generator, the package's label rule (`models.sampling.class_cycle` from image `start` on: balanced classes)
    unless `labels_fn(rng, n)` gives the labels; the images come from `models.sampling.sample`.
    """
    z_dim = int(generator.z_dim)
    num_classes = getattr(generator, "num_classes", None)
    call = backend.compile_inference(lambda z, labels: sample(generator, z, labels))

    def draw(rng: np.random.Generator, n: int, start: int) -> Any:
        z = rng.standard_normal((n, z_dim)).astype(np.float32)
        labels = class_cycle(n, num_classes, start) if labels_fn is None else np.asarray(labels_fn(rng, n))
        return call(z, labels)

    return draw


def evaluate_generator(
    generator: keras.Model,
    num_samples: int,
    batch_size: int,
    extractor: Extractor,
    real_statistics: RealStatistics | None = None,
    real_features_for_kid: Any | None = None,
    seed: int = 0,
    labels_fn: Callable[[np.random.Generator, int], Any] | None = None,
    progress: bool = True,
    is_splits: int = 10,
    kid_num_subsets: int = 100,
    kid_subset_size: int = 1000,
    max_kid_features: int = MAX_KID_FEATURES,
    prdc_k: int = DEFAULT_K,
) -> dict[str, float]:
    """Samples a generator and computes FID, Inception Score and KID.

    Generator contract: a keras model with attributes `z_dim` (int) and `num_classes`
    (int or None), called as `generator(z, labels, training=False)` when conditional and
    `generator(z, training=False)` otherwise, returning images `(B, H, W, 3)` in
    `[-1, 1]`. Latents are `N(0, I)` float32 drawn from `np.random.default_rng(seed)`;
    labels (int32) cycle through the classes (`models.sampling.class_cycle`: balanced) unless `labels_fn`
    is given.

    Generated features are reduced to streaming statistics batch by batch; only the
    first `max_kid_features` are kept, for KID and for precision, recall, density and
    coverage (`precision_recall_density_coverage`, on the same real features as KID). A
    metric whose inputs are missing is NaN: FID without `real_statistics`, KID and the
    four others without real features, IS when the extractor gives no logits.

    Args:
        generator: keras.Model. The generator (see the contract above).
        num_samples: int. Number of images to generate (>= 2).
        batch_size: int. Images per generator call.
        extractor: what `make_extractor` builds, or a callable / small keras model
            returning features or `(features, logits)`; see `extract_features`.
        real_statistics: precomputed real statistics (a `StatisticsFile`, whose features
            serve KID, a `StreamingStatistics`, a `.npz` path or `(mu, sigma)`), or a
            batched dataset of real images, from which the statistics of `num_samples`
            images are computed (and, when `real_features_for_kid` is None, up to
            `max_kid_features` features kept for KID). Defaults to `None` (no FID).
        real_features_for_kid: array `(n, D)` or None. Real features for KID. Defaults
            to `None`.
        seed: int. Seed for latents and default labels. Defaults to `0`.
        labels_fn: callable `(rng, batch_size) -> labels` or None. Draws the labels of
            a conditional generator. Defaults to uniform labels.
        progress: bool. Show a `keras.utils.Progbar`. Defaults to `True`.
        is_splits: int. Splits for the Inception Score, clamped to `num_samples`.
            Defaults to `10`.
        kid_num_subsets: int. KID subsets. Defaults to `100`.
        kid_subset_size: int. KID subset size (clamped, see
            `kernel_inception_distance`). Defaults to `1000`.
        max_kid_features: int. Generated (and dataset) features kept for KID. Defaults
            to `10_000`.
        prdc_k: int. Nearest neighbour of precision/recall/density/coverage; both
            feature sets need more rows. Defaults to `5`.

    Returns:
        A dict with keys `fid`, `is_mean`, `is_std`, `kid_mean`, `kid_std`, `precision`,
        `recall`, `density`, `coverage` (floats) and `num_samples` (int).

    Example:

    ```python
    extractor = make_extractor()  # The 2015 FID Inception network.
    real = StatisticsFile.load("celeba64_fid.npz", extractor)
    results = evaluate_generator(gan.sampling_generator(), 10_000, 100, extractor, real)
    print(results["fid"])
    ```
    """
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    if num_samples < 2:
        raise ValueError(f"`num_samples` must be >= 2. Received: num_samples={num_samples}")
    if not hasattr(generator, "z_dim"):
        raise ValueError("`generator` must have a `z_dim` attribute.")

    real_mu_sigma = None
    if real_statistics is not None:
        if _is_dataset(real_statistics):
            computed = compute_dataset_statistics(
                real_statistics,
                extractor,
                num_samples=num_samples,
                keep_features=max_kid_features if real_features_for_kid is None else 0,
                progress=progress,
            )
            if isinstance(computed, tuple):
                computed, real_features_for_kid = computed
            real_mu_sigma = (computed.mean, computed.covariance)
        else:
            real_mu_sigma = resolve_real_statistics(real_statistics)
            if isinstance(real_statistics, StatisticsFile) and real_features_for_kid is None:
                real_features_for_kid = real_statistics.features

    draw = _sampler(generator, labels_fn)
    rng = np.random.default_rng(seed)
    stats = None
    all_probs: list[np.ndarray] = []
    bar = keras.utils.Progbar(num_samples, unit_name="image") if progress else None
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        features, logits = extract_features(extractor, draw(rng, n, done))
        if stats is None:
            stats = StreamingStatistics(features.shape[1], keep=max_kid_features)
        stats.update(features)
        if logits is not None:
            all_probs.append(_softmax(logits))
        done += n
        if bar is not None:
            bar.update(done)

    results: dict[str, float] = {
        "fid": math.nan,
        "is_mean": math.nan,
        "is_std": math.nan,
        "kid_mean": math.nan,
        "kid_std": math.nan,
        **dict.fromkeys(PRDC_KEYS, math.nan),
        "num_samples": int(num_samples),
    }
    if real_mu_sigma is not None:
        if real_mu_sigma[0].shape[0] != stats.dim:
            raise ValueError(
                f"Real statistics are {real_mu_sigma[0].shape[0]}-d but the extractor gives {stats.dim}-d features."
            )
        results["fid"] = frechet_distance(real_mu_sigma[0], real_mu_sigma[1], stats.mean, stats.covariance)
    if all_probs:
        probs = np.concatenate(all_probs, axis=0)
        results["is_mean"], results["is_std"] = inception_score(probs, splits=min(is_splits, probs.shape[0]))
    if real_features_for_kid is not None and max_kid_features >= 2:
        results["kid_mean"], results["kid_std"] = kernel_inception_distance(
            real_features_for_kid,
            stats.features,
            num_subsets=kid_num_subsets,
            subset_size=kid_subset_size,
            seed=seed,
        )
        results.update(precision_recall_density_coverage(real_features_for_kid, stats.features, k=prdc_k))
    return results
