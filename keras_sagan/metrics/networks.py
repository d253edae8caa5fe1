"""The feature networks a user can pick, their weights, and running them: `make_extractor`, `extract_features`.

`network` is what `--inception` takes and `weights` what `--inception_weights` takes, in
`keras-sagan train` and `keras-sagan evaluate` alike:

- `"fid"` (default): the 2015 FID Inception network (`fid_network.py`); `weights=None` is
  pytorch-fid's file from the Keras cache, downloaded (and checked against its SHA-256) when missing;
- `"fashion_mnist"`: the Fashion-MNIST classifier (`domain.py`), as TTUR advises for MNIST-like data;
  `weights=None` is the file shipped in the package, checked against its pinned SHA-256.

`"random"` gives a randomly initialised network (smoke tests); anything else is a file. A missing
or unreadable file is one `UsageError` line. Every weights file is hashed by `file_sha256`, and the
hash is what statistics files record, so statistics of other weights are never mixed.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import keras
import numpy as np

from keras_sagan.errors import UsageError, bad_value, one_line

FID = "fid"
"""The 2015 TF graph of every published FID and Inception Score, with pytorch-fid's weights (the default)."""
DOMAIN = "fashion_mnist"
"""The Fashion-MNIST classifier (`domain.py`); its numbers are not Inception-comparable."""
CHOICES = (FID, DOMAIN)

FID_NETWORK = "inception-2015-12-05/pool3"
DOMAIN_NETWORK = "fashion_mnist_classifier/features"
RECORDED = {FID: FID_NETWORK, DOMAIN: DOMAIN_NETWORK}
"""`--inception` value -> the `network` recorded in statistics files."""

RANDOM_WEIGHTS = "random"
"""`--inception_weights random`: a randomly initialised network, for smoke tests only; also its recorded hash."""

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
"""SHA-256 of pytorch-fid's file (its name carries the first 8 digits, torch hub's convention)."""


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (every weights file the metrics pin is checked with it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keras_cache_dir() -> str:
    """Where `keras.utils.get_file` keeps `cache_subdir="models"` files: `$KERAS_HOME/models` as it is now.

    Keras reads `$KERAS_HOME` once, at import; this reads it at call time, with Keras' fallback to
    `/tmp/.keras` when the home directory is not writable.
    """
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.join(home, "models")


def fid_weights_path(url: str | None = None) -> str:
    """The local path of pytorch-fid's FID Inception weights, downloaded into the Keras cache when missing.

    Args:
        url: str or None. Where to download from. Defaults to pytorch-fid's release URL.

    Raises:
        UsageError: one line: the download failed (offline) or the file's hash is wrong; it gives
            the URL and `--inception_weights FILE`.
    """
    url = url or FID_WEIGHTS_URL
    cache_dir = os.path.dirname(keras_cache_dir())
    try:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp/.keras for a missing directory.
        return keras.utils.get_file(
            url.rsplit("/", 1)[-1],
            url,
            cache_dir=cache_dir,
            cache_subdir="models",
            file_hash=FID_WEIGHTS_SHA256,
            hash_algorithm="sha256",
        )
    except Exception as err:  # urllib's errors, Keras' "URL fetch failure", a hash mismatch.
        raise UsageError(
            f"cannot get the FID Inception weights from {url} ({one_line(err)}); download that file where the "
            "network is reachable and pass it as --inception_weights FILE"
        ) from None


def make_extractor(weights: str | os.PathLike | None = None, network: str = FID, resize: str = "bilinear"):
    """Builds the feature extractor of `network` and `weights`.

    Args:
        weights: str, path-like or None. `None`: the network's published weights (see the module);
            `"random"` (`RANDOM_WEIGHTS`): a randomly initialised network whose numbers mean nothing
            (tests); otherwise the path of a weights file (`.pth` for `"fid"`, `.weights.h5` for
            `"fashion_mnist"`).
        network: str. `"fid"` (the 2015 network of published numbers) or `"fashion_mnist"`.
            Defaults to `"fid"`.
        resize: str. The FID network's resize: `"bilinear"` (pytorch-fid) or `"clean"` (clean-fid).
            Defaults to `"bilinear"`; `"fashion_mnist"` takes only `"bilinear"`.

    Returns:
        A `FIDInceptionExtractor` or a `DomainClassifierExtractor`; its `network`, `feature_dim`,
        `weights_sha256`, `image_size` and `resize_method` are the provenance that statistics
        files record (`extractor_provenance`).

    Raises:
        UsageError: one line naming the bad value, or the missing or unreadable file.

    Example:

    ```python
    extractor = make_extractor("random", "fashion_mnist")
    features, logits = extractor(images)  # (B, 128), (B, 10)
    ```
    """
    if network not in CHOICES:
        raise UsageError(bad_value("--inception", network, f"one of {CHOICES}"))
    if network == FID:
        from keras_sagan.metrics.fid_network import fid_inception

        return fid_inception(weights, resize=resize)
    from keras_sagan.metrics.domain import DomainClassifierExtractor

    if resize != "bilinear":
        raise UsageError(f"--inception fashion_mnist resizes only 'bilinear'; received: resize={resize!r}")
    return DomainClassifierExtractor(None if weights is None else os.fspath(weights))


def extractor_provenance(extractor: Any) -> dict[str, Any]:
    """What statistics computed by `extractor` record about it: network, feature size, weights, resize.

    Works for any extractor; what an extractor does not expose is `None` (a `None` weights hash
    means the statistics are never reused from a cache).
    """
    return {
        "network": getattr(extractor, "network", None) or getattr(extractor, "name", None) or type(extractor).__name__,
        "feature_dim": getattr(extractor, "feature_dim", None),
        "weights_sha256": getattr(extractor, "weights_sha256", None),
        "image_size": getattr(extractor, "image_size", None),
        "resize": getattr(extractor, "resize_method", None),
    }


# An extractor is either an object with `features_and_logits(images)` (what `make_extractor` builds)
# or any callable (a function, a small keras model) mapping images `(B, H, W, 3)` in [-1, 1] to
# features `(B, D)`, or to a pair `(features, logits)` when it can also classify (then the Inception
# Score is computed from `softmax(logits)`). A `feature_dim` attribute, when present, is checked.
Extractor = Any


def extract_features(extractor: Extractor, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Runs an extractor on a batch and returns `(features, logits or None)` as arrays.

    Args:
        extractor: what `make_extractor` builds, or a callable / keras model returning features
            `(B, D)` or a pair `(features, logits)`.
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
