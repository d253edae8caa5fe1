"""`StatisticsFile`: the one schema, reader and writer of real-image statistics files (`.npz`).

A file holds `mu`, `sigma`, `count`, `features` (for KID, optional) and `provenance`: a JSON
string saying which extractor (network, feature size, weights SHA-256, input size, resize) read
which images (data source, image size, count). `StatisticsFile.load` also reads the files
written before this schema, and TTUR / pytorch-fid files with only `mu` and `sigma`:

- `<model_dir>/real_stats.npz` of the training loop (a JSON `key`);
- `keras_sagan evaluate --stats_out` (`image_size` and `data`);
- `StreamingStatistics.save` (`mu`, `sigma`, `count`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any

import numpy as np

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError, bad_value, one_line
from keras_sagan.metrics.networks import FID_NETWORK, KERAS_NETWORK, RECORDED
from keras_sagan.metrics.statistics import StreamingStatistics

_FLAG_OF = {name: flag for flag, name in RECORDED.items()}  # Recorded network -> its --inception value.

SCHEMA = "keras_sagan.statistics/1"
"""The `schema` entry of the files `StatisticsFile.save` writes."""

RECOMPUTE = "recompute it with `keras-sagan evaluate --model MODEL --data DATASET --stats_out FILE`"


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
        """Reads a statistics file (this schema, the older ones, or TTUR's `mu`/`sigma`).

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
            UsageError: one line: the file is missing, unreadable, lacks `mu`/`sigma`, or does
                not fit `extractor`; it says how to recompute it.
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
            provenance = _provenance(arrays)
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
        stats._check(label, extractor, image_size)
        return stats

    @property
    def network(self) -> str | None:
        """The network that computed these statistics, as recorded or as inferred for files without a record.

        A file with only `mu` and `sigma` is TTUR's or pytorch-fid's (the 2015 FID network); any
        other file without a record is keras_sagan's from before `--inception fid` existed (Keras'
        InceptionV3). `None` for statistics computed here by an extractor without a name.
        """
        recorded = (self.provenance.get("extractor") or {}).get("network")
        if recorded or self.loaded_from is None:
            return recorded
        if not self.provenance and self.count is None and self.features is None:
            return FID_NETWORK
        return KERAS_NETWORK

    def _check(self, label: str, extractor: Any, image_size: int | None) -> None:
        """Refuses statistics that cannot be compared with `extractor`; collects the notes."""
        recorded = self.provenance.get("extractor") or {}
        if extractor is not None:
            # The network first: its message says which --inception fits.
            network = getattr(extractor, "network", None)
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
            elif not recorded.get("network"):
                self.notes.append(f"{label} records no network; read as keras_sagan's older Keras InceptionV3 file")
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


def _provenance(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The provenance of a file of any schema, in this schema's terms (what an old file did not record is absent)."""
    if "provenance" in arrays:
        return json.loads(str(arrays["provenance"]))
    if "key" in arrays:  # The training loop's real_stats.npz cache.
        key = json.loads(str(arrays["key"]))
        data = {"dataset": key.get("dataset")}
        data.update({k: key[k] for k in ("data_dir", "image_folder") if key.get(k) is not None})
        provenance = {"data": data, "image_size": key.get("image_size"), "num_samples": key.get("num_samples")}
        return {**provenance, "legacy": "real_stats key"}
    provenance: dict[str, Any] = {}
    if "image_size" in arrays:  # `keras_sagan evaluate --stats_out` before this schema.
        provenance["image_size"] = int(arrays["image_size"])
    if "data" in arrays:
        provenance["data"] = {"dataset": str(arrays["data"])}
    return provenance
