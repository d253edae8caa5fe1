"""Feature statistics, their one owner: accumulate, save/load with provenance, and a cache keyed by what made them.

- `StreamingStatistics`: running mean and covariance of feature vectors (float64), keeping the first
  `keep` vectors for KID and precision/recall;
- `StatisticsFile`: the one schema of statistics files (`.npz`): `mu`, `sigma`, `count`, `features`
  (optional) and `provenance`, a JSON string saying which extractor (network, feature size, weights
  SHA-256, input size, resize) read which images (data source, image size, count). TTUR and
  pytorch-fid files with only `mu` and `sigma` load as the 2015 FID network's. Files written by
  keras_sagan's removed Keras-InceptionV3 path are refused in one line;
- `compute_dataset_statistics(dataset, extractor)`: one pass over a dataset;
- `real_statistics(data_spec, extractor, cache=...)`: the statistics of a `DataSpec`'s images,
  reused from `cache` while everything that made them (data, image size, count, seed, network,
  weights hash, resize) is unchanged;
- `resolve_real_statistics`: whatever a caller passes, as `(mu, sigma)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
import zipfile
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError, bad_value, one_line
from keras_sagan.metrics.networks import (
    FID_NETWORK,
    RANDOM_WEIGHTS,
    RECORDED,
    Extractor,
    extract_features,
    extractor_provenance,
)

MAX_KID_FEATURES = 10_000
"""Real and generated feature vectors kept for KID (and saved with real statistics): 10k x 2048 float32 is 80 MB."""

SCHEMA = "keras_sagan.statistics/1"
"""The `schema` entry of the files `StatisticsFile.save` writes."""

RECOMPUTE = "recompute it with `keras-sagan evaluate --model MODEL --data DATASET --stats_out FILE`"

KERAS_INCEPTION = "keras.applications.InceptionV3/avg_pool"
"""The network of the removed `--inception keras` path, as its statistics files recorded it."""

_FLAG_OF = {name: flag for flag, name in RECORDED.items()}  # Recorded network -> its --inception value.
_MATCHED = ("data", "image_size", "num_samples", "seed", "extractor")  # The cache key.

RealStatistics = Any  # StatisticsFile | StreamingStatistics | str | os.PathLike | (mu, sigma)


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
        keep: int. Also keep the first `keep` feature vectors (for KID and precision/recall);
            memory is `keep * dim * 4` bytes. Defaults to `0`.

    Example:

    ```python
    stats = StreamingStatistics(2048)
    for images in dataset:
        stats.update(extractor(images))
    mu, sigma = stats.mean, stats.covariance
    StatisticsFile.from_streaming(stats).save("celeba64_train.npz")
    ```

    Reference:
        Chan, Golub, LeVeque, "Updating Formulae and a Pairwise Algorithm for Computing
        Sample Variances", 1979.
    """

    def __init__(self, dim: int, keep: int = 0) -> None:
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"`dim` must be a positive int. Received: dim={dim!r}")
        if not isinstance(keep, (int, np.integer)) or isinstance(keep, bool) or keep < 0:
            raise ValueError(f"`keep` must be an int >= 0. Received: keep={keep!r}")
        self.dim = int(dim)
        self.keep = int(keep)
        self._kept: list[np.ndarray] = []
        self._num_kept = 0
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
        if self._num_kept < self.keep:  # As given (float32 from an extractor), not the float64 copy.
            self._kept.append(np.asarray(features)[: self.keep - self._num_kept])
            self._num_kept += self._kept[-1].shape[0]
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
    def features(self) -> np.ndarray | None:
        """The first `keep` feature vectors seen (float32 `(min(keep, count), dim)`), or `None` when `keep` is 0."""
        if not self.keep:
            return None
        if not self._kept:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(np.concatenate(self._kept, axis=0), np.float32)

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


@dataclasses.dataclass(eq=False)  # Arrays: compare the fields with NumPy.
class StatisticsFile:
    """Real-image feature statistics with their provenance, as saved in a statistics file.

    Args:
        mu: array `(d,)`. Feature mean (float64).
        sigma: array `(d, d)`. Feature covariance (float64; zeros while `count < 2`).
        count: int or None. Number of images (`None`: the file did not say, as in TTUR files).
        features: array `(n, d)` or None. Feature vectors kept for KID (float32).
        provenance: dict. JSON-able: `extractor` (see `extractor_provenance`), `image_size`,
            `num_samples` (requested), `count`, `seed`, `data` (`DataSpec.describe()`).

    Attributes:
        notes: list of str. Warnings found by `load` (another image size, no features, ...).
        loaded_from: str or None. The file `load` read; `None` for statistics computed here.
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int | None = None
    features: np.ndarray | None = None
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list, compare=False, repr=False)
    loaded_from: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, np.float64)
        self.sigma = np.asarray(self.sigma, np.float64)
        if self.mu.ndim != 1 or self.sigma.shape != (self.mu.shape[0],) * 2:
            raise ValueError(
                f"`mu` and `sigma` must have shapes (d,) and (d, d); received: mu.shape={self.mu.shape}, "
                f"sigma.shape={self.sigma.shape}"
            )
        if self.features is not None:
            self.features = np.asarray(self.features, np.float32)
            if self.features.ndim != 2 or self.features.shape[1] != self.feature_dim:
                raise ValueError(bad_value("features.shape", self.features.shape, f"(n, {self.feature_dim})"))
        if self.count is not None:
            self.count = int(self.count)

    @property
    def feature_dim(self) -> int:
        return int(self.mu.shape[0])

    @classmethod
    def from_streaming(
        cls,
        stats: StreamingStatistics,
        features: np.ndarray | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> StatisticsFile:
        """The statistics of a `StreamingStatistics` (at least one sample), with kept features."""
        sigma = stats.covariance if stats.count >= 2 else np.zeros((stats.dim, stats.dim))
        return cls(stats.mean, sigma, stats.count, features, dict(provenance or {}))

    def to_streaming(self) -> StreamingStatistics:
        """A `StreamingStatistics` equal to the one saved, so that `update` keeps accumulating."""
        if self.count is None:
            raise ValueError("`count` must be known to resume accumulating; received: count=None")
        return StreamingStatistics.from_moments(self.mu, self.sigma, self.count)

    def save(self, path: str | os.PathLike) -> str:
        """Writes the file at `path` as given (no `.npz` added), atomically; returns `path`."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        arrays: dict[str, Any] = {
            "schema": np.str_(SCHEMA),
            "mu": self.mu,
            "sigma": self.sigma,
            "provenance": np.str_(json.dumps(self.provenance, sort_keys=True)),
        }
        if self.count is not None:
            arrays["count"] = np.int64(self.count)
        if self.features is not None:
            arrays["features"] = self.features
        with atomic_write(path) as f:  # A file object: NumPy adds no `.npz` suffix.
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        extractor: Any = None,
        image_size: int | None = None,
        *,
        what: str | None = None,
    ) -> StatisticsFile:
        """Reads a statistics file (this schema, or TTUR's and pytorch-fid's `mu`/`sigma`).

        Args:
            path: str or path-like. The `.npz` file.
            extractor: the extractor the statistics will be compared with, or None. A file of
                another feature size, or whose provenance names another network, is refused.
            image_size: int or None. The size of the images to compare with; another recorded
                size gives a note.
            what: str or None. How the caller names the file in messages (`"--stats_in"`,
                `"eval_stats"`). Defaults to `"path"`.

        Returns:
            A `StatisticsFile` whose `notes` list the warnings (another image size or weights
            file, no features so no KID, no record of the network).

        Raises:
            UsageError: one line: the file is missing, unreadable, lacks `mu`/`sigma`, was made
                by the removed Keras InceptionV3 path, or does not fit `extractor`; it says how
                to recompute it.
        """
        path = os.fspath(path)
        label = f"{what or 'path'}={path!r}"
        if not os.path.isfile(path):
            raise UsageError(f"{label}: cannot read real statistics: no such file")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "mu" not in data.files or "sigma" not in data.files:
                    raise UsageError(
                        f"{label}: cannot read real statistics: it holds {data.files}, not `mu` and `sigma`"
                    )
                arrays = {key: data[key] for key in data.files}
            provenance = json.loads(str(arrays["provenance"])) if "provenance" in arrays else {}
            stats = cls(
                arrays["mu"],
                arrays["sigma"],
                int(arrays["count"]) if "count" in arrays else None,
                arrays.get("features"),
                provenance,
                loaded_from=path,
            )
        except UsageError as err:
            raise UsageError(f"{err}; {RECOMPUTE}") from None
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            raise UsageError(f"{label}: cannot read real statistics: {one_line(err)}; {RECOMPUTE}") from None
        if ("schema" not in arrays and set(arrays) != {"mu", "sigma"}) or stats.network == KERAS_INCEPTION:
            # Every keras_sagan file before this schema came from Keras' InceptionV3, as do files naming it.
            raise UsageError(
                f"{label}: was computed with Keras' InceptionV3, which keras_sagan no longer has; "
                f"{RECOMPUTE} --inception fid (the 2015 Inception) or --inception fashion_mnist"
            )
        stats._check(label, extractor, image_size)
        return stats

    @property
    def network(self) -> str | None:
        """The network that computed these statistics, as recorded, or the 2015 FID network for TTUR's files.

        A file with only `mu` and `sigma` is TTUR's or pytorch-fid's (the 2015 FID network). `None`
        for statistics computed here by an extractor without a name.
        """
        recorded = (self.provenance.get("extractor") or {}).get("network")
        if recorded or self.loaded_from is None:
            return recorded
        if not self.provenance and self.count is None and self.features is None:
            return FID_NETWORK
        return None

    def _check(self, label: str, extractor: Any, image_size: int | None) -> None:
        """Refuses statistics that cannot be compared with `extractor`; collects the notes."""
        recorded = self.provenance.get("extractor") or {}
        if extractor is not None:
            # The network first: its message says which --inception fits.
            network = getattr(extractor, "network", None)
            if network and self.network is None:
                raise UsageError(f"{label}: records no network, so it cannot be compared with {network}; {RECOMPUTE}")
            if network and self.network != network:
                other = f", or pass --inception {_FLAG_OF[self.network]}" if self.network in _FLAG_OF else ""
                raise UsageError(f"{label}: was computed with {self.network}, not {network}; {RECOMPUTE}{other}")
            dim = getattr(extractor, "feature_dim", None)
            if dim is not None and self.feature_dim != dim:
                raise UsageError(
                    f"{label}: holds mu {self.mu.shape} and sigma {self.sigma.shape}; the Inception features are "
                    f"{dim}-d; {RECOMPUTE}"
                )
            if not recorded.get("network") and self.network == FID_NETWORK:
                self.notes.append(
                    f"{label} records no network; read as TTUR/pytorch-fid statistics of the 2015 FID Inception network"
                )
            for key, attribute, what in (
                ("weights_sha256", "weights_sha256", "--inception_weights"),
                ("resize", "resize_method", "resize"),
            ):
                if not recorded.get(key):  # Nothing recorded (TTUR, old files): never hash the weights.
                    continue
                ours = getattr(extractor, attribute, None)
                if ours and recorded[key] != ours:
                    raise UsageError(
                        f"{label}: was computed with another {what} ({recorded[key]}; now {ours}); mixing them "
                        f"makes FID meaningless; {RECOMPUTE} and these settings"
                    )
        saved_size = self.provenance.get("image_size")
        if image_size is not None and saved_size is not None and int(saved_size) != int(image_size):
            self.notes.append(
                f"{label} was computed from {saved_size}x{saved_size} images; the images evaluated are "
                f"{image_size}x{image_size}"
            )
        if self.features is None:
            self.notes.append(f"{label} holds no `features`, so KID is not computed")


def _images_from_element(element: Any) -> Any:
    if isinstance(element, dict):
        if "image" not in element:
            raise ValueError(f"Dict dataset elements need an 'image' key. Received keys: {list(element)}")
        return element["image"]
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


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
    stats = None
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
        if stats is None:
            stats = StreamingStatistics(features.shape[1], keep=keep_features)
        stats.update(features)
        seen += features.shape[0]
        if bar is not None:
            bar.update(seen)
        if num_samples is not None and seen >= num_samples:
            break
    if stats is None:
        raise ValueError("The dataset yielded no images.")
    if num_samples is not None and seen < num_samples:
        warnings.warn(
            f"The dataset ended after {seen} images; asked for num_samples={num_samples}.",
            stacklevel=2,
        )
    if keep_features:
        return stats, stats.features
    return stats


def real_statistics(
    data_spec: Any,
    extractor: Extractor,
    *,
    image_size: int,
    num_samples: int,
    batch_size: int = 100,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    progress: bool | str = False,
) -> StatisticsFile:
    """Feature statistics of up to `num_samples` real images of `data_spec`, in one pass.

    Args:
        data_spec: `keras_sagan.data.DataSpec`. The images, read at `image_size`, shuffled with
            `seed`, without repeating (a smaller dataset gives fewer images, and a note).
        extractor: see `networks.make_extractor` (or any extractor of `extract_features`).
        image_size: int. Side of the images (the generator's size).
        num_samples: int. Most images read; the first `min(num_samples, MAX_KID_FEATURES)`
            feature vectors are kept for KID.
        batch_size: int. Images per extractor call. Defaults to `100`.
        seed: int. Shuffle seed of the images. Defaults to `0`.
        cache: path or None. A statistics file to reuse when its provenance matches (data spec,
            image size, `num_samples`, `seed`, extractor and weights hash), else to compute and
            save. Statistics of random weights (or an extractor without a weights hash) are
            never reused. Defaults to `None` (no cache).
        progress: bool or str. Show a progress bar; a str is printed first, once the dataset
            is built (so a bad dataset fails before anything is printed). Defaults to `False`.

    Returns:
        A `StatisticsFile`; `notes` hold warnings (the dataset ended early), and `loaded_from`
        is the cache path when it was reused.
    """
    provenance = {
        "data": data_spec.describe(),
        "image_size": int(image_size),
        "num_samples": int(num_samples),
        "seed": seed,
        "extractor": extractor_provenance(extractor),
    }
    weights = provenance["extractor"]["weights_sha256"]
    if cache is not None and weights not in (None, RANDOM_WEIGHTS) and os.path.isfile(cache):
        try:
            stored = StatisticsFile.load(cache)
        except UsageError:  # A damaged or foreign file: compute it again.
            stored = None
        if stored is not None and all(stored.provenance.get(key) == provenance[key] for key in _MATCHED):
            return stored
    dataset = data_spec.load(image_size, batch_size, seed, repeat=False)
    if isinstance(progress, str):
        print(progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats, features = compute_dataset_statistics(
            dataset,
            extractor,
            num_samples=num_samples,
            keep_features=min(num_samples, MAX_KID_FEATURES),
            progress=bool(progress),
        )
    result = StatisticsFile.from_streaming(stats, features, {**provenance, "count": stats.count})
    # E.g. "The dataset ended after 100 images"; other warnings (TensorFlow's) are not ours to tell.
    result.notes = [one_line(str(w.message)) for w in caught if issubclass(w.category, UserWarning)]
    if cache is not None:
        result.save(cache)
    return result


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
