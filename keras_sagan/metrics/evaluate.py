"""Evaluate a generator (FID, Inception Score, KID) and precompute dataset statistics."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_sagan.metrics.frechet import frechet_distance
from keras_sagan.metrics.inception_score import inception_score
from keras_sagan.metrics.kid import kernel_inception_distance
from keras_sagan.metrics.prdc import DEFAULT_K, precision_recall_density_coverage
from keras_sagan.metrics.statistics import StreamingStatistics
from keras_sagan.metrics.statistics_file import StatisticsFile

# An extractor is either an object with `features_and_logits(images)` (like
# `InceptionFeatureExtractor`) or any callable (a function, a small keras model) mapping
# images `(B, H, W, 3)` in [-1, 1] to features `(B, D)`, or to a pair
# `(features, logits)` when it can also classify (then the Inception Score is computed
# from `softmax(logits)`). A `feature_dim` attribute, when present, is checked.
Extractor = Any
RealStatistics = Any  # StatisticsFile | StreamingStatistics | str | os.PathLike | (mu, sigma) | dataset


PRDC_KEYS = ("precision", "recall", "density", "coverage")
MAX_KID_FEATURES = 10_000
"""Real and generated feature vectors kept for KID (and saved with real statistics)."""


def extract_features(extractor: Extractor, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Runs an extractor on a batch and returns `(features, logits or None)` as arrays.

    Args:
        extractor: an `InceptionFeatureExtractor`, or a callable / keras model returning
            features `(B, D)` or a pair `(features, logits)`.
        images: `(B, H, W, C)` images in `[-1, 1]`.

    Returns:
        `features` as a float32 array `(B, D)` and `logits` `(B, K)` or `None`.
    """
    if hasattr(extractor, "features_and_logits"):
        features, logits = extractor.features_and_logits(images)
    else:
        if isinstance(extractor, keras.layers.Layer):
            outputs = extractor(images, training=False)
        else:
            outputs = extractor(images)
        if isinstance(outputs, (tuple, list)):
            if len(outputs) != 2:
                raise ValueError(
                    f"An extractor must return features or (features, logits). Received {len(outputs)} outputs."
                )
            features, logits = outputs
        else:
            features, logits = outputs, None
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"Extractor features must be (batch, dim). Received: {features.shape}")
    expected = getattr(extractor, "feature_dim", None)
    if expected is not None and features.shape[1] != expected:
        raise ValueError(f"Extractor returned {features.shape[1]}-d features but its feature_dim is {expected}.")
    if logits is not None:
        logits = np.asarray(logits, dtype=np.float32)
    return features, logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _images_from_element(element: Any) -> Any:
    if isinstance(element, dict):
        if "image" not in element:
            raise ValueError(f"Dict dataset elements need an 'image' key. Received keys: {list(element)}")
        return element["image"]
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


class _FeatureAccumulator:
    """Streaming statistics of every feature batch, plus the first `keep` feature rows."""

    def __init__(self, keep: int):
        self.keep = keep
        self.stats: StreamingStatistics | None = None
        self._kept: list[np.ndarray] = []
        self._num_kept = 0

    def add(self, features: np.ndarray) -> None:
        if self.stats is None:
            self.stats = StreamingStatistics(features.shape[1])
        self.stats.update(features)
        if self._num_kept < self.keep:
            self._kept.append(features[: self.keep - self._num_kept])
            self._num_kept += self._kept[-1].shape[0]

    def kept(self) -> np.ndarray:
        return np.concatenate(self._kept, axis=0)


def compute_dataset_statistics(
    dataset: Iterable[Any],
    extractor: Extractor,
    num_samples: int | None = None,
    keep_features: int = 0,
    progress: bool = False,
) -> StreamingStatistics | tuple[StreamingStatistics, np.ndarray]:
    """Feature statistics of real images, for FID against precomputed statistics.

    Args:
        dataset: a batched `tf.data.Dataset` (or any iterable) whose elements are images
            `(B, H, W, C)` in `[-1, 1]` (or uint8 for the Inception extractor), an
            `(images, labels, ...)` tuple, or a dict with an `"image"` key.
        extractor: see `extract_features`.
        num_samples: int or None. Stop after this many images (the last batch is cut);
            `None` reads the whole dataset. A warning is issued when the dataset ends
            earlier. Defaults to `None`.
        keep_features: int. Also keep the first `keep_features` feature vectors (for
            KID); memory is `keep_features * D * 4` bytes. Defaults to `0`.
        progress: bool. Show a `keras.utils.Progbar`. Defaults to `False`.

    Returns:
        A `StreamingStatistics`; with `keep_features > 0` a pair
        `(statistics, features)` where `features` is float32 `(min(keep, n), D)`.

    Example:

    ```python
    stats = compute_dataset_statistics(train_ds, extractor, num_samples=50_000)
    StatisticsFile.from_streaming(stats).save("celeba64_inception.npz")
    ```
    """
    if num_samples is not None and (not isinstance(num_samples, (int, np.integer)) or num_samples < 1):
        raise ValueError(f"`num_samples` must be a positive int or None. Received: {num_samples!r}")
    if not isinstance(keep_features, int) or keep_features < 0:
        raise ValueError(f"`keep_features` must be an int >= 0. Received: {keep_features!r}")
    bar = keras.utils.Progbar(num_samples, unit_name="image") if progress else None
    accumulator = _FeatureAccumulator(keep_features)
    seen = 0
    for element in dataset:
        images = _images_from_element(element)
        if len(getattr(images, "shape", ())) != 4:
            raise ValueError(
                "Dataset elements must be batches of images (B, H, W, C); batch the "
                f"dataset. Received shape: {getattr(images, 'shape', None)}"
            )
        if num_samples is not None:
            images = images[: num_samples - seen]
        features, _ = extract_features(extractor, images)
        accumulator.add(features)
        seen += features.shape[0]
        if bar is not None:
            bar.update(seen)
        if num_samples is not None and seen >= num_samples:
            break
    stats = accumulator.stats
    if stats is None:
        raise ValueError("The dataset yielded no images.")
    if num_samples is not None and seen < num_samples:
        warnings.warn(
            f"The dataset ended after {seen} images; asked for num_samples={num_samples}.",
            stacklevel=2,
        )
    if keep_features:
        return stats, accumulator.kept()
    return stats


def resolve_real_statistics(
    real_statistics: RealStatistics,
) -> tuple[np.ndarray, np.ndarray]:
    """Turns precomputed real statistics into `(mu, sigma)` float64 arrays.

    Args:
        real_statistics: a `StatisticsFile`, a `StreamingStatistics`, the path of a statistics
            file (read by `StatisticsFile.load`: ours, old ones, and pytorch-fid/TTUR files, though
            their numbers come from another network), or a pair `(mu, sigma)`.

    Returns:
        `(mu, sigma)`.
    """
    if isinstance(real_statistics, StatisticsFile):
        return real_statistics.mu, real_statistics.sigma
    if isinstance(real_statistics, StreamingStatistics):
        return real_statistics.mean, real_statistics.covariance
    if isinstance(real_statistics, (str, os.PathLike)):
        loaded = StatisticsFile.load(real_statistics, what="real_statistics")
        return loaded.mu, loaded.sigma
    if isinstance(real_statistics, (tuple, list)) and len(real_statistics) == 2:
        mu, sigma = (np.asarray(a, dtype=np.float64) for a in real_statistics)
        if mu.ndim == 1 and sigma.ndim == 2:
            return mu, sigma
    raise ValueError(
        "`real_statistics` must be a StatisticsFile, a StreamingStatistics, a statistics file path or a "
        f"(mu, sigma) pair; received: {type(real_statistics).__name__}"
    )


def _is_dataset(value: Any) -> bool:
    if isinstance(value, (StatisticsFile, StreamingStatistics, str, os.PathLike, tuple, list, np.ndarray)):
        return False
    return isinstance(value, Iterable)  # tf.data.Dataset included


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
    labels (int32) are uniform over the classes unless `labels_fn` is given.

    Generated features are reduced to streaming statistics batch by batch; only the
    first `max_kid_features` are kept, for KID and for precision, recall, density and
    coverage (`precision_recall_density_coverage`, on the same real features as KID). A
    metric whose inputs are missing is NaN: FID without `real_statistics`, KID and the
    four others without real features, IS when the extractor gives no logits.

    Args:
        generator: keras.Model. The generator (see the contract above).
        num_samples: int. Number of images to generate (>= 2).
        batch_size: int. Images per generator call.
        extractor: an `InceptionFeatureExtractor`, or a callable / small keras model
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
    extractor = InceptionFeatureExtractor()
    real = StatisticsFile.load("celeba64_inception.npz", extractor)
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
    z_dim = int(generator.z_dim)
    num_classes = getattr(generator, "num_classes", None)

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

    if num_classes is None:
        sample = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)
    else:
        sample = tf.function(lambda z, y: generator(z, y, training=False), reduce_retracing=True)

    rng = np.random.default_rng(seed)
    accumulator = _FeatureAccumulator(max_kid_features)
    all_probs: list[np.ndarray] = []
    bar = keras.utils.Progbar(num_samples, unit_name="image") if progress else None
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        z = rng.standard_normal((n, z_dim)).astype(np.float32)
        if num_classes is None:
            images = sample(z)
        else:
            if labels_fn is None:
                labels = rng.integers(0, num_classes, size=(n,)).astype(np.int32)
            else:
                labels = np.asarray(labels_fn(rng, n))
            images = sample(z, labels)
        features, logits = extract_features(extractor, images)
        accumulator.add(features)
        if logits is not None:
            all_probs.append(_softmax(logits))
        done += n
        if bar is not None:
            bar.update(done)

    stats = accumulator.stats
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
            accumulator.kept(),
            num_subsets=kid_num_subsets,
            subset_size=kid_subset_size,
            seed=seed,
        )
        results.update(precision_recall_density_coverage(real_features_for_kid, accumulator.kept(), k=prdc_k))
    return results
