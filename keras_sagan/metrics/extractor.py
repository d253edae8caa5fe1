"""The one feature-extractor factory: `make_extractor(weights, network)`, and what an extractor records as provenance.

`network` is what `--inception` takes and `weights` what `--inception_weights` takes, in
`keras-sagan train` and `keras-sagan evaluate` alike:

- `"fid"` (default): the 2015 FID Inception network (`fid_inception`); `weights=None` is
  pytorch-fid's file from the Keras cache, downloaded when missing;
- `"keras"`: Keras' InceptionV3; `weights=None` is Keras' ImageNet file from the Keras cache
  (never downloaded);
- `"fashion_mnist"`: the Fashion-MNIST classifier (`domain.py`); `weights=None` is the file shipped
  in the package, checked against its pinned SHA-256.

`"random"` gives a randomly initialised network (smoke tests); anything else is a file. A missing
or unreadable file is one `UsageError` line.
"""

from __future__ import annotations

import os
from typing import Any

from keras_sagan.errors import UsageError, bad_value, one_line
from keras_sagan.metrics import networks
from keras_sagan.metrics.inception import (
    RANDOM,
    WEIGHTS_URL,
    InceptionFeatureExtractor,
    _keras_cache_dirs,
    inception_weights_path,
)

RANDOM_WEIGHTS = RANDOM  # The flag value is the network's recorded weights hash.
"""`--inception_weights random`: a randomly initialised InceptionV3, for smoke tests only."""

_HOW_TO = (
    f"download {WEIGHTS_URL} and pass it as --inception_weights FILE (or --inception_weights random for a smoke test)"
)


def make_extractor(weights: str | os.PathLike | None = None, network: str = networks.FID, resize: str = "bilinear"):
    """Builds the Inception feature extractor of `network` and `weights`.

    Args:
        weights: str, path-like or None. `None`: the network's published weights from the Keras
            cache (`$KERAS_HOME/models`, default `~/.keras/models`; the FID network's file is
            downloaded when missing); `"random"` (`RANDOM_WEIGHTS`): a randomly initialised network
            whose numbers mean nothing (tests); otherwise the path of a weights file (`.pth` for
            `"fid"`; `.h5` or `.weights.h5`, with the classifier, for `"keras"`).
        network: str. `"fid"` (the 2015 network of published numbers) or `"keras"` (Keras'
            InceptionV3). Defaults to `"fid"`.
        resize: str. The FID network's resize: `"bilinear"` (pytorch-fid) or `"clean"` (clean-fid).
            Defaults to `"bilinear"`; `"keras"` takes only `"bilinear"`.

    Returns:
        A `FIDInceptionExtractor` or an `InceptionFeatureExtractor`; its `network`,
        `weights_sha256`, `image_size` and `resize_method` are the provenance that statistics
        files record.

    Raises:
        UsageError: one line naming the bad value, or the missing or unreadable file and
            `--inception_weights FILE`.
    """
    if network not in networks.CHOICES:
        raise UsageError(bad_value("--inception", network, f"one of {networks.CHOICES}"))
    if network == networks.FID:
        from keras_sagan.metrics.fid_extractor import fid_inception

        return fid_inception(weights, resize=resize)
    if network == networks.DOMAIN:
        from keras_sagan.metrics.domain import DomainClassifierExtractor

        if resize != "bilinear":
            raise UsageError(f"--inception fashion_mnist resizes only 'bilinear'; received: resize={resize!r}")
        return DomainClassifierExtractor(None if weights is None else os.fspath(weights))
    if resize != "bilinear":
        raise UsageError(f"--inception keras resizes only 'bilinear'; received: resize={resize!r}")
    if weights is not None and os.fspath(weights) == RANDOM_WEIGHTS:
        return InceptionFeatureExtractor(weights=None)
    if weights is None:
        try:
            path = inception_weights_path()
        except FileNotFoundError:
            raise UsageError(
                f"InceptionV3 ImageNet weights not found in the Keras cache {_keras_cache_dirs()}; {_HOW_TO}"
            ) from None
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise UsageError(f"InceptionV3 weights file not found: {path!r}; {_HOW_TO}")
    try:
        return InceptionFeatureExtractor(weights=path)
    except (OSError, ValueError, TypeError) as err:  # Not an HDF5 file, or another network's weights.
        raise UsageError(f"cannot load InceptionV3 weights from {path!r} ({one_line(err)}); {_HOW_TO}") from None


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
