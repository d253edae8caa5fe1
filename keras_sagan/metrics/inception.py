"""InceptionV3 pool3 features and logits for FID, KID and the Inception Score."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_sagan.metrics.networks import KERAS_NETWORK

# Facts about Keras' released InceptionV3 weights (keras/src/applications/inception_v3.py).
WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/"
    "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
)
WEIGHTS_URL_NO_TOP = (
    "https://storage.googleapis.com/tensorflow/keras-applications/"
    "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
_WEIGHTS_MD5 = "9a0d58056eeedaa3f26cb7ebd46da564"
_WEIGHTS_MD5_NO_TOP = "bcbd6486424b2319ff4ef7d526e38f63"

IMAGE_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1000
NETWORK = KERAS_NETWORK
"""The network and layer whose features the statistics files record (their provenance)."""
RANDOM = "random"
"""`weights_sha256` of a randomly initialised network."""

# Looked up at call time so tests can substitute a small model with the same layer names.
_build_inception_v3 = keras.applications.InceptionV3


def _keras_cache_dirs() -> list[str]:
    """Where `keras.utils.get_file` keeps `cache_subdir="models"` files, in Keras' order."""
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    dirs = [os.path.join(home, "models")]
    # get_file falls back to /tmp/.keras when the home is not writable.
    if not os.access(home, os.W_OK) and os.path.isdir("/tmp"):
        dirs.append(os.path.join("/tmp", ".keras", "models"))
    return dirs


def inception_weights_path(include_top: bool = True, allow_download: bool = False) -> str:
    """Path of Keras' ImageNet InceptionV3 weights file, found in the Keras cache.

    Looks in `$KERAS_HOME/models/` (default `~/.keras/models/`) for the file that
    `keras.applications.InceptionV3(weights="imagenet")` would download. Only when
    `allow_download=True` does it let Keras download a missing file.

    Args:
        include_top: bool. The full file (with the 1000-class classifier, needed for the
            Inception Score) or the `_notop` one. Defaults to `True`.
        allow_download: bool. Download a missing file with `keras.utils.get_file`.
            Defaults to `False`.

    Returns:
        The local path of the weights file.

    Raises:
        FileNotFoundError: the file is missing and `allow_download` is `False`; the
            message says where to get it and how to point to it.
    """
    url = WEIGHTS_URL if include_top else WEIGHTS_URL_NO_TOP
    fname = url.rsplit("/", 1)[-1]
    dirs = _keras_cache_dirs()
    for directory in dirs:
        candidate = os.path.join(directory, fname)
        if os.path.isfile(candidate):
            return candidate
    if allow_download:
        return keras.utils.get_file(
            fname,
            url,
            cache_subdir="models",
            file_hash=_WEIGHTS_MD5 if include_top else _WEIGHTS_MD5_NO_TOP,
        )
    raise FileNotFoundError(_missing_weights_message(f"not found in {dirs}", url, fname))


def _missing_weights_message(problem: str, url: str, fname: str) -> str:
    return (
        f"InceptionV3 ImageNet weights {problem}. Download {url} and either put the file "
        f"in ~/.keras/models/ (or $KERAS_HOME/models/) or pass its path as "
        f"`InceptionFeatureExtractor(weights='/path/to/{fname}')`; "
        "`allow_download=True` lets Keras download it where the network is reachable, "
        "and `weights=None` gives a randomly initialised network (tests only)."
    )


class InceptionFeatureExtractor:
    """Pool3 features (2048-d) and class logits of Keras' InceptionV3.

    Images are floats in `[-1, 1]` (the generator's output range, which is also what
    Keras' InceptionV3 expects) or `uint8` in `[0, 255]` (mapped with `x / 127.5 - 1`);
    one channel is repeated to three. They are resized to 299x299 with bilinear
    interpolation without antialiasing (`tf.image.resize(..., "bilinear")`), which is
    what the TTUR (TF1 graph) and pytorch-fid (`F.interpolate(mode="bilinear")`)
    implementations do. For upsampling (64 -> 299) antialiasing changes nothing; when
    downsampling large images the clean-fid paper (Parmar et al. 2022) shows such
    aliased resizes shift FID, so `antialias=True` is available. Those pipelines read
    8-bit PNGs; `quantize=True` rounds float inputs to the 8-bit grid first.

    Comparability: Keras' InceptionV3 has 1000 ImageNet classes, whereas the original
    Inception Score and FID code use the TF1 `2015-12-05` graph with 1008 outputs and
    different weights. Inception Scores from this extractor therefore differ from the
    published ones, and FIDs are not directly comparable with pytorch-fid/TTUR numbers;
    compare models only with numbers computed by the same extractor.

    Args:
        weights: `"imagenet"`, a path, or `None`. `"imagenet"` loads Keras' weights file
            from the Keras cache (see `inception_weights_path`); a path loads that file
            (`.h5` or `.weights.h5`, with or without top to match `include_top`); `None`
            leaves the network randomly initialised (for tests). Defaults to
            `"imagenet"`.
        include_top: bool. Also compute the 1000 class logits (needed for the Inception
            Score). Defaults to `True`.
        antialias: bool. Antialias the resize. Defaults to `False`.
        quantize: bool. Round float images to 256 levels before resizing. Defaults to
            `False`.
        allow_download: bool. Let Keras download missing `"imagenet"` weights. Defaults
            to `False`.

    Example:

    ```python
    extractor = InceptionFeatureExtractor(weights="/data/inception_v3_weights.h5")
    features = extractor(images)                     # (B, 2048)
    features, logits = extractor.features_and_logits(images)  # logits: (B, 1000)
    ```

    Reference:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
        CVPR 2016; Parmar et al., "On Aliased Resizing and Surprising Subtleties in GAN
        Evaluation", CVPR 2022.
    """

    feature_dim = FEATURE_DIM
    network = NETWORK
    image_size = IMAGE_SIZE

    def __init__(
        self,
        weights: str | os.PathLike | None = "imagenet",
        include_top: bool = True,
        antialias: bool = False,
        quantize: bool = False,
        allow_download: bool = False,
    ) -> None:
        self.weights = weights
        self.include_top = bool(include_top)
        self.antialias = bool(antialias)
        self.quantize = bool(quantize)
        self.allow_download = bool(allow_download)
        self.num_classes = NUM_CLASSES if self.include_top else None

        # Resolve the weights file before building anything, so a missing file fails fast.
        if weights is None:
            path = None
        elif isinstance(weights, str) and weights == "imagenet":
            path = inception_weights_path(self.include_top, self.allow_download)
        elif isinstance(weights, (str, os.PathLike)):
            path = os.fspath(weights)
            if not os.path.isfile(path):
                url = WEIGHTS_URL if self.include_top else WEIGHTS_URL_NO_TOP
                raise FileNotFoundError(
                    _missing_weights_message(f"file not found: weights={path!r}", url, url.rsplit("/", 1)[-1])
                )
        else:
            raise ValueError(f"`weights` must be 'imagenet', a file path or None. Received: weights={weights!r}")
        self.weights_path = path
        self._sha256: str | None = None

        # Features must stay float32 even under a mixed-precision global policy.
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            if self.include_top:
                base = _build_inception_v3(
                    include_top=True,
                    weights=None,
                    input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                    classifier_activation=None,
                )
            else:
                base = _build_inception_v3(
                    include_top=False,
                    weights=None,
                    input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                    pooling="avg",
                )
            if path is not None:
                base.load_weights(path)
            if self.include_top:
                outputs = [
                    base.get_layer("avg_pool").output,
                    base.get_layer("predictions").output,
                ]
                self.model = keras.Model(base.inputs, outputs, name="inception_v3_features")
            else:
                self.model = base
        finally:
            keras.config.set_dtype_policy(previous_policy)
        self._forward = tf.function(self._forward_fn, reduce_retracing=True)

    @property
    def resize_method(self) -> str:
        """How images reach 299x299: `"bilinear"`, plus `+antialias` and `+quantize` when on."""
        return "bilinear" + ("+antialias" if self.antialias else "") + ("+quantize" if self.quantize else "")

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights file (read once), or `"random"` for a randomly initialised network."""
        if self.weights_path is None:
            return RANDOM
        if self._sha256 is None:
            digest = hashlib.sha256()
            with open(self.weights_path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def _forward_fn(self, x: tf.Tensor) -> Any:
        return self.model(x, training=False)

    def preprocess(self, images: Any) -> tf.Tensor:
        """Converts images to float32 in `[-1, 1]` at 299x299x3.

        Args:
            images: `(B, H, W, C)` with `C` in {1, 3}: floats in `[-1, 1]` or `uint8`.

        Returns:
            A float32 tensor of shape `(B, 299, 299, 3)`.
        """
        x = tf.convert_to_tensor(images)
        if x.shape.rank != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"`images` must have shape (batch, height, width, 1 or 3). Received: {x.shape}")
        if x.dtype == tf.uint8:
            x = tf.cast(x, tf.float32) / 127.5 - 1.0
        elif x.dtype.is_floating:
            x = tf.cast(x, tf.float32)
            if x.shape[0] != 0:
                nonfinite_count = tf.reduce_sum(tf.cast(~tf.math.is_finite(x), tf.float32))
                low, high, nonfinite = tf.stack([tf.reduce_min(x), tf.reduce_max(x), nonfinite_count]).numpy()
                nonfinite = int(nonfinite)
                # Written so that NaN fails it: every comparison with NaN is False.
                if nonfinite or not (low >= -1.001 and high <= 1.001):
                    raise ValueError(
                        "Float `images` must be finite and in [-1, 1] (pass uint8 for [0, 255]). "
                        f"Received: min={low:.4g}, max={high:.4g}, {nonfinite} NaN or inf values"
                    )
            if self.quantize:
                x = tf.round((x + 1.0) * 127.5) / 127.5 - 1.0
        else:
            raise ValueError(f"`images` must be float or uint8. Received: dtype={x.dtype.name}")
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        if x.shape[1] != IMAGE_SIZE or x.shape[2] != IMAGE_SIZE:
            x = tf.image.resize(x, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear", antialias=self.antialias)
        return x

    def features_and_logits(self, images: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Pool3 features and class logits.

        Args:
            images: `(B, H, W, C)` floats in `[-1, 1]` or `uint8`.

        Returns:
            `(features, logits)`: float32 arrays of shapes `(B, 2048)` and `(B, 1000)`;
            `logits` is `None` when `include_top=False`.
        """
        outputs = self._forward(self.preprocess(images))
        if self.include_top:
            features, logits = outputs
            return np.asarray(features), np.asarray(logits)
        return np.asarray(outputs), None

    def __call__(self, images: Any) -> np.ndarray:
        """Pool3 features, float32 of shape `(B, 2048)`."""
        return self.features_and_logits(images)[0]

    def __repr__(self) -> str:
        return (
            f"InceptionFeatureExtractor(weights={self.weights!r}, "
            f"include_top={self.include_top}, antialias={self.antialias}, "
            f"quantize={self.quantize})"
        )
