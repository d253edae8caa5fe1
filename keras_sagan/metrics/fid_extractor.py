"""`fid_inception()`: pool3 features and 1008 logits of the 2015 FID Inception network, on images of any size.

The weights are pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (the 2015 TF graph's weights,
ported), read without torch by `keras_sagan.torch_files`. When the file is not in the Keras cache
(`$KERAS_HOME/models`, default `~/.keras/models`) it is downloaded with `keras.utils.get_file` and
checked against its SHA-256, as `keras.applications` does; offline, the error is one line with
the URL and `--inception_weights FILE`.

Two resizes to 299x299, each matching a family of published numbers:

- `"bilinear"` (default): bilinear, `align_corners=False`, no antialiasing, on the float image:
  pytorch-fid's `F.interpolate`, so pytorch-fid's FIDs (and, within resize differences, TTUR's);
- `"clean"`: clean-fid's resize: the image quantised to uint8, PIL bicubic per channel in float
  mode, clipped to [0, 255], then `(x - 128) / 128` as the TF graph normalises: clean-fid's
  default `mode="clean"` FIDs and its published reference statistics.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from keras_sagan.errors import UsageError, one_line
from keras_sagan.metrics.domain import file_sha256 as _sha256
from keras_sagan.metrics.fid_inception import (
    FEATURE_DIM,
    IMAGE_SIZE,
    NUM_CLASSES,
    build_fid_inception_model,
    load_fid_weights,
)
from keras_sagan.metrics.inception import _keras_cache_dirs
from keras_sagan.metrics.networks import FID_NETWORK

WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
"""SHA-256 of pytorch-fid's file (its name carries the first 8 digits, torch hub's convention)."""
NETWORK = FID_NETWORK
"""The network the statistics files record for this extractor."""
RESIZES = ("bilinear", "clean")
RANDOM = "random"


def fid_weights_path(url: str | None = None) -> str:
    """The local path of pytorch-fid's FID Inception weights, downloaded into the Keras cache when missing.

    Args:
        url: str or None. Where to download from. Defaults to pytorch-fid's release URL.

    Raises:
        UsageError: one line: the download failed (offline) or the file's hash is wrong; it gives
            the URL and `--inception_weights FILE`.
    """
    url = url or WEIGHTS_URL
    fname = url.rsplit("/", 1)[-1]
    # $KERAS_HOME as it is now (Keras reads it once, at import), as `inception_weights_path` looks it up.
    cache_dir = os.path.dirname(_keras_cache_dirs()[0])
    try:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp/.keras for a missing directory.
        return keras.utils.get_file(
            fname, url, cache_dir=cache_dir, cache_subdir="models", file_hash=WEIGHTS_SHA256, hash_algorithm="sha256"
        )
    except Exception as err:  # urllib's errors, Keras' "URL fetch failure", a hash mismatch.
        raise UsageError(
            f"cannot get the FID Inception weights from {url} ({one_line(err)}); download that file where the "
            "network is reachable and pass it as --inception_weights FILE"
        ) from None


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """`(size_out, size_in)` weights of a 1-D bilinear resize, half-pixel centres, no antialiasing.

    Output pixel `i` samples the input at `(i + 0.5) * size_in / size_out - 0.5`, clamped below at
    0 (torch's `align_corners=False` rule), between its two neighbours.
    """
    src = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    matrix = np.zeros((size_out, size_in), np.float64)
    np.add.at(matrix, (np.arange(size_out), low), 1.0 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix.astype(np.float32)


def resize_bilinear(images: Any, size: int = IMAGE_SIZE) -> Any:
    """Resizes `(B, H, W, C)` float images to `size` x `size` as pytorch-fid does (keras.ops, any backend).

    Bilinear with `align_corners=False` and no antialiasing, written as two small matrix products,
    so it is exact on every backend (JAX's own resize antialiases when shrinking).
    """
    height, width = int(images.shape[1]), int(images.shape[2])
    rows = keras.ops.convert_to_tensor(_bilinear_matrix(height, size))
    cols = keras.ops.convert_to_tensor(_bilinear_matrix(width, size))
    x = keras.ops.einsum("oh,bhwc->bowc", rows, images)
    return keras.ops.einsum("pw,bowc->bopc", cols, x)


def resize_clean(pixels: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """clean-fid's resize: each channel of uint8 `(B, H, W, C)` as a float PIL image, bicubic, clipped to [0, 255].

    Returns float32 `(B, size, size, C)` in [0, 255] (not quantised again).
    """
    from PIL import Image

    pixels = np.asarray(pixels)
    out = np.empty((pixels.shape[0], size, size, pixels.shape[3]), np.float32)
    for b in range(pixels.shape[0]):
        for c in range(pixels.shape[3]):
            channel = Image.fromarray(pixels[b, :, :, c].astype(np.float32), mode="F")
            out[b, :, :, c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)
    return out


def _compile(function, height: int, width: int):
    """The backend's jit of the forward pass for one image size, any batch (tf.function, jax.jit)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function, input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32)])
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


class FIDInceptionExtractor:
    """Pool3 features (2048-d) and 1008 logits of the 2015 FID Inception network.

    Build it with `fid_inception()`. Images are `(B, H, W, C)`, `C` in {1, 3}, floats in [-1, 1]
    (or uint8 pixels), at any size; they are resized to 299x299 by `resize` (see the module).

    Attributes:
        model: the `keras.Model` on 299x299 inputs in [-1, 1]: `(pool3, logits)`.
        network, feature_dim, num_classes, image_size, resize_method, weights_sha256: what
            statistics files record (see `extractor_provenance`).
    """

    network = NETWORK
    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES
    image_size = IMAGE_SIZE

    def __init__(self, weights_path: str | None, resize: str = "bilinear") -> None:
        if resize not in RESIZES:
            raise UsageError(f"`resize` must be one of {RESIZES}; received: resize={resize!r}")
        self.weights_path = weights_path
        self.resize_method = resize
        self.model, units = build_fid_inception_model()
        self._sha256 = RANDOM
        if weights_path is not None:
            from keras_sagan.torch_files import load_state_dict

            self._sha256 = _sha256(weights_path)
            load_fid_weights(self.model, units, load_state_dict(weights_path), weights_path)
        self._forwards: dict[tuple[int, int], Any] = {}  # (height, width) -> the compiled forward pass.

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights file, or `"random"` for a randomly initialised network."""
        return self._sha256

    def _forward_fn(self, x):
        if x.shape[1] != IMAGE_SIZE or x.shape[2] != IMAGE_SIZE:
            x = resize_bilinear(x)
        return self.model(x, training=False)

    def preprocess(self, images: Any) -> np.ndarray:
        """Checks the images and brings them to what the jitted forward takes: float32 in [-1, 1], 3 channels.

        With `resize="clean"` they are also resized to 299x299 here (PIL runs on the host).
        """
        x = np.asarray(keras.ops.convert_to_numpy(images))
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise UsageError(f"`images` must have shape (batch, height, width, 1 or 3); received: shape={x.shape}")
        if x.dtype == np.uint8:
            pixels = x
            x = x.astype(np.float32) / 127.5 - 1.0
        elif np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
            if x.size and not np.all(np.isfinite(x)):
                raise UsageError(f"`images` must be finite; received {int(np.sum(~np.isfinite(x)))} NaN or inf values")
            if x.size and (x.min() < -1.001 or x.max() > 1.001):
                raise UsageError(
                    f"`images` must be in [-1, 1]; received: min={float(x.min()):.4g}, max={float(x.max()):.4g}"
                )
            pixels = None
        else:
            raise UsageError(f"`images` must be float in [-1, 1] or uint8; received: dtype={x.dtype}")
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
            pixels = None if pixels is None else np.repeat(pixels, 3, axis=-1)
        if self.resize_method == "clean":
            if pixels is None:
                pixels = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)  # images.to_uint8's rule.
            x = (resize_clean(pixels) - 128.0) / 128.0  # The TF graph's own input normalisation.
        return x

    def features_and_logits(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(pool3 (B, 2048), logits (B, 1008))` as float32 arrays."""
        x = self.preprocess(images)
        size = (int(x.shape[1]), int(x.shape[2]))
        if size not in self._forwards:
            self._forwards[size] = _compile(self._forward_fn, *size)
        pool3, logits = self._forwards[size](x)
        return np.asarray(keras.ops.convert_to_numpy(pool3)), np.asarray(keras.ops.convert_to_numpy(logits))

    def __call__(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Same as `features_and_logits`."""
        return self.features_and_logits(images)

    def __repr__(self) -> str:
        return f"FIDInceptionExtractor(weights_path={self.weights_path!r}, resize={self.resize_method!r})"


def fid_inception(weights: str | os.PathLike | None = None, resize: str = "bilinear") -> FIDInceptionExtractor:
    """The 2015 FID Inception network: images in [-1, 1] of any size -> `(pool3 (B, 2048), logits (B, 1008))`.

    Args:
        weights: str, path-like or None. `None`: pytorch-fid's weights file from the Keras cache,
            downloaded (and hash-checked) when missing; `"random"`: random weights (tests only); a
            path: a `torch.save`d state dict of pytorch-fid's `fid_inception_v3()`. Its name being
            pytorch-fid's, its SHA-256 must be the published one.
        resize: str. `"bilinear"` (pytorch-fid) or `"clean"` (clean-fid). Defaults to `"bilinear"`.

    Returns:
        A `FIDInceptionExtractor`.

    Raises:
        UsageError: one line: a missing, unsafe or foreign weights file, a failed download.

    Example:

    ```python
    extractor = fid_inception()  # Downloads 92 MB into ~/.keras/models once.
    pool3, logits = extractor(images)  # (B, 2048), (B, 1008)
    ```

    Reference:
        Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
        Equilibrium", NeurIPS 2017; Parmar et al., "On Aliased Resizing and Surprising
        Subtleties in GAN Evaluation", CVPR 2022.
    """
    if resize not in RESIZES:
        raise UsageError(f"`resize` must be one of {RESIZES}; received: resize={resize!r}")
    if weights is not None and os.fspath(weights) == RANDOM:
        return FIDInceptionExtractor(None, resize)
    if weights is None:
        path = fid_weights_path()
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise UsageError(f"FID Inception weights file not found: {path!r}; download {WEIGHTS_URL}")
        if os.path.basename(path) == WEIGHTS_URL.rsplit("/", 1)[-1] and _sha256(path) != WEIGHTS_SHA256:
            raise UsageError(
                f"{path}: SHA-256 {_sha256(path)[:16]}... is not pytorch-fid's {WEIGHTS_SHA256[:16]}... (a damaged or "
                f"other file); download {WEIGHTS_URL} again"
            )
    return FIDInceptionExtractor(path, resize)
