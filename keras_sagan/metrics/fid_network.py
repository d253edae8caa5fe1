"""The FID Inception network: the 2015 TF graph (`inception-2015-12-05`) in Keras, with pytorch-fid's weights.

Every published FID and Inception Score (TTUR, pytorch-fid, clean-fid, torch-fidelity, the SAGAN
paper, mmgeneration, StudioGAN) comes from this graph: 2048-d pool3 features and 1008 logits.
It differs from `keras.applications.InceptionV3` in its weights and in three places, which
pytorch-fid's `FIDInceptionA/C/E` blocks reproduce and this module follows:

- the average pools of the A, C and first E blocks exclude the padded zeros (TF's `SAME`);
- the last E block (`Mixed_7c`) has a max pool, not an average pool, in its pool branch;
- the classifier has 1008 outputs.

`build_fid_inception_model()` is the bare network on 299x299 inputs in [-1, 1];
`load_fid_weights(model, state_dict)` maps a pytorch-fid state dict onto it tensor by tensor
(kernels `(out, in, kh, kw)` -> `(kh, kw, in, out)`). Everything is `keras.layers`/`keras.ops`,
so the network runs on any Keras backend. `fid_inception()` builds the extractor: the weights
(pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, read without torch by
`keras_sagan.torch_files`; found or downloaded by `networks.fid_weights_path`), then one of two
resizes to 299x299, each matching a family of published numbers:

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

from keras_sagan import backend
from keras_sagan.errors import UsageError
from keras_sagan.metrics.networks import (
    FID_NETWORK,
    FID_WEIGHTS_SHA256,
    FID_WEIGHTS_URL,
    RANDOM_WEIGHTS,
    fid_weights_path,
    file_sha256,
)

IMAGE_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BN_EPSILON = 1e-3  # torchvision's BasicConv2d, as in the TF graph.
RESIZES = ("bilinear", "clean")


class _Builder:
    """Builds the network functionally, naming each conv+BN unit as its pytorch-fid state-dict prefix."""

    def __init__(self) -> None:
        self.units: list[str] = []  # State-dict prefixes of the conv+BN units, in build order.

    def conv(self, x, name: str, filters: int, kernel, strides: int = 1, padding: str = "valid"):
        """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 1e-3), ReLU."""
        self.units.append(name)
        x = keras.layers.Conv2D(
            filters, kernel, strides, padding, use_bias=False, dtype="float32", name=f"{name}.conv"
        )(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, dtype="float32", name=f"{name}.bn")(x)
        return keras.layers.ReLU(dtype="float32", name=f"{name}.relu")(x)

    def avg_pool_3x3(self, x, name: str):
        # Keras' "same" average pool divides by the number of real pixels in the window on every
        # backend: TF's behaviour, and pytorch-fid's `count_include_pad=False`.
        return keras.layers.AveragePooling2D(3, 1, "same", dtype="float32", name=f"{name}.avg_pool")(x)

    def block_a(self, x, name: str, pool_features: int):
        b1 = self.conv(x, f"{name}.branch1x1", 64, 1)
        b5 = self.conv(x, f"{name}.branch5x5_1", 48, 1)
        b5 = self.conv(b5, f"{name}.branch5x5_2", 64, 5, padding="same")
        b3 = self.conv(x, f"{name}.branch3x3dbl_1", 64, 1)
        b3 = self.conv(b3, f"{name}.branch3x3dbl_2", 96, 3, padding="same")
        b3 = self.conv(b3, f"{name}.branch3x3dbl_3", 96, 3, padding="same")
        bp = self.conv(self.avg_pool_3x3(x, name), f"{name}.branch_pool", pool_features, 1)
        return keras.layers.Concatenate(dtype="float32", name=name)([b1, b5, b3, bp])

    def block_b(self, x, name: str):
        b3 = self.conv(x, f"{name}.branch3x3", 384, 3, strides=2)
        bd = self.conv(x, f"{name}.branch3x3dbl_1", 64, 1)
        bd = self.conv(bd, f"{name}.branch3x3dbl_2", 96, 3, padding="same")
        bd = self.conv(bd, f"{name}.branch3x3dbl_3", 96, 3, strides=2)
        bp = keras.layers.MaxPooling2D(3, 2, dtype="float32", name=f"{name}.max_pool")(x)
        return keras.layers.Concatenate(dtype="float32", name=name)([b3, bd, bp])

    def block_c(self, x, name: str, c7: int):
        b1 = self.conv(x, f"{name}.branch1x1", 192, 1)
        b7 = self.conv(x, f"{name}.branch7x7_1", c7, 1)
        b7 = self.conv(b7, f"{name}.branch7x7_2", c7, (1, 7), padding="same")
        b7 = self.conv(b7, f"{name}.branch7x7_3", 192, (7, 1), padding="same")
        bd = self.conv(x, f"{name}.branch7x7dbl_1", c7, 1)
        for i, (kernel, filters) in enumerate((((7, 1), c7), ((1, 7), c7), ((7, 1), c7), ((1, 7), 192)), start=2):
            bd = self.conv(bd, f"{name}.branch7x7dbl_{i}", filters, kernel, padding="same")
        bp = self.conv(self.avg_pool_3x3(x, name), f"{name}.branch_pool", 192, 1)
        return keras.layers.Concatenate(dtype="float32", name=name)([b1, b7, bd, bp])

    def block_d(self, x, name: str):
        b3 = self.conv(x, f"{name}.branch3x3_1", 192, 1)
        b3 = self.conv(b3, f"{name}.branch3x3_2", 320, 3, strides=2)
        b7 = self.conv(x, f"{name}.branch7x7x3_1", 192, 1)
        b7 = self.conv(b7, f"{name}.branch7x7x3_2", 192, (1, 7), padding="same")
        b7 = self.conv(b7, f"{name}.branch7x7x3_3", 192, (7, 1), padding="same")
        b7 = self.conv(b7, f"{name}.branch7x7x3_4", 192, 3, strides=2)
        bp = keras.layers.MaxPooling2D(3, 2, dtype="float32", name=f"{name}.max_pool")(x)
        return keras.layers.Concatenate(dtype="float32", name=name)([b3, b7, bp])

    def block_e(self, x, name: str, max_pool: bool):
        def split(y, prefix):  # A 1x3 and a 3x1 conv side by side.
            a = self.conv(y, f"{prefix}a", 384, (1, 3), padding="same")
            b = self.conv(y, f"{prefix}b", 384, (3, 1), padding="same")
            return keras.layers.Concatenate(dtype="float32", name=f"{prefix}ab")([a, b])

        b1 = self.conv(x, f"{name}.branch1x1", 320, 1)
        b3 = split(self.conv(x, f"{name}.branch3x3_1", 384, 1), f"{name}.branch3x3_2")
        bd = self.conv(x, f"{name}.branch3x3dbl_1", 448, 1)
        bd = split(self.conv(bd, f"{name}.branch3x3dbl_2", 384, 3, padding="same"), f"{name}.branch3x3dbl_3")
        if max_pool:  # The 2015 graph's Mixed_7c (pytorch-fid's FIDInceptionE_2).
            pooled = keras.layers.MaxPooling2D(3, 1, "same", dtype="float32", name=f"{name}.max_pool")(x)
        else:
            pooled = self.avg_pool_3x3(x, name)
        bp = self.conv(pooled, f"{name}.branch_pool", 192, 1)
        return keras.layers.Concatenate(dtype="float32", name=name)([b1, b3, bd, bp])


def build_fid_inception_model(image_size: int = IMAGE_SIZE) -> tuple[keras.Model, list[str]]:
    """The 2015 FID Inception network, randomly initialised.

    Args:
        image_size: int. Input side. Defaults to `299`, the size every published number uses;
            the topology needs at least 75.

    Returns:
        `(model, units)`: a `keras.Model` mapping `(B, S, S, 3)` float32 in [-1, 1] to
        `(pool3 (B, 2048), logits (B, 1008))`, and the state-dict prefixes of its conv+BN units.
    """
    if image_size < 75:
        raise UsageError(f"`image_size` must be >= 75 (the Inception topology); received: image_size={image_size}")
    b = _Builder()
    inputs = keras.Input((image_size, image_size, 3), dtype="float32", name="images")
    x = b.conv(inputs, "Conv2d_1a_3x3", 32, 3, strides=2)
    x = b.conv(x, "Conv2d_2a_3x3", 32, 3)
    x = b.conv(x, "Conv2d_2b_3x3", 64, 3, padding="same")
    x = keras.layers.MaxPooling2D(3, 2, dtype="float32", name="maxpool1")(x)
    x = b.conv(x, "Conv2d_3b_1x1", 80, 1)
    x = b.conv(x, "Conv2d_4a_3x3", 192, 3)
    x = keras.layers.MaxPooling2D(3, 2, dtype="float32", name="maxpool2")(x)
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = b.block_a(x, name, pool_features)
    x = b.block_b(x, "Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = b.block_c(x, name, c7)
    x = b.block_d(x, "Mixed_7a")
    x = b.block_e(x, "Mixed_7b", max_pool=False)
    x = b.block_e(x, "Mixed_7c", max_pool=True)
    pool3 = keras.layers.GlobalAveragePooling2D(dtype="float32", name="pool3")(x)
    logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="fc")(pool3)
    model = keras.Model(inputs, [pool3, logits], name="fid_inception_2015")
    return model, b.units


def _expected_tensors(units: list[str]) -> dict[str, tuple[str, str, int]]:
    """State-dict name -> (Keras layer, weight kind, index in the layer's weights)."""
    expected = {"fc.weight": ("fc", "dense", 0), "fc.bias": ("fc", "dense", 1)}
    for unit in units:
        expected[f"{unit}.conv.weight"] = (f"{unit}.conv", "conv", 0)
        # Keras BatchNormalization weights: gamma, beta, moving_mean, moving_variance.
        for index, key in enumerate(("weight", "bias", "running_mean", "running_var")):
            expected[f"{unit}.bn.{key}"] = (f"{unit}.bn", "vector", index)
    return expected


def load_fid_weights(model: keras.Model, units: list[str], state_dict: dict[str, np.ndarray], source: str) -> None:
    """Sets the network's weights from pytorch-fid's state dict (`fid_inception_v3().state_dict()`).

    Every tensor is checked before anything is assigned: a missing, unexpected or misshapen one
    raises a one-line `UsageError` naming it and `source`. `num_batches_tracked` is ignored.

    Args:
        model, units: from `build_fid_inception_model`.
        state_dict: `{name: array}`, e.g. `keras_sagan.torch_files.load_state_dict(path)`.
        source: how messages name the weights (the file path).
    """
    expected = _expected_tensors(units)
    given = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    if missing:
        raise UsageError(
            f"{source}: not pytorch-fid's FID Inception weights: {len(missing)} tensors missing, e.g. {missing[0]!r}"
        )
    unexpected = sorted(set(given) - set(expected))
    if unexpected:
        raise UsageError(f"{source}: not pytorch-fid's FID Inception weights: unexpected tensor {unexpected[0]!r}")
    values: dict[str, list[Any]] = {}
    for name, (layer_name, kind, index) in expected.items():
        layer = model.get_layer(layer_name)
        target = tuple(layer.weights[index].shape)
        array = np.asarray(given[name], np.float32)
        if kind == "conv":
            array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array  # (out, in, kh, kw) -> Keras
        elif kind == "dense" and index == 0:
            array = array.T
        if array.shape != target:
            raise UsageError(
                f"{source}: tensor {name!r} has shape {tuple(given[name].shape)}; the FID Inception network "
                f"needs {target if kind != 'conv' else (target[3], target[2], target[0], target[1])}"
            )
        values.setdefault(layer_name, [None] * len(layer.weights))[index] = array
    for layer_name, weights in values.items():
        model.get_layer(layer_name).set_weights(weights)


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


class FIDInceptionExtractor:
    """Pool3 features (2048-d) and 1008 logits of the 2015 FID Inception network.

    Build it with `fid_inception()`. Images are `(B, H, W, C)`, `C` in {1, 3}, floats in [-1, 1]
    (or uint8 pixels), at any size; they are resized to 299x299 by `resize` (see the module).

    Attributes:
        model: the `keras.Model` on 299x299 inputs in [-1, 1]: `(pool3, logits)`.
        network, feature_dim, num_classes, image_size, resize_method, weights_sha256: what
            statistics files record (see `extractor_provenance`).
    """

    network = FID_NETWORK
    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES
    image_size = IMAGE_SIZE

    def __init__(self, weights_path: str | None, resize: str = "bilinear") -> None:
        if resize not in RESIZES:
            raise UsageError(f"`resize` must be one of {RESIZES}; received: resize={resize!r}")
        self.weights_path = weights_path
        self.resize_method = resize
        self.model, units = build_fid_inception_model()
        self._sha256 = RANDOM_WEIGHTS
        if weights_path is not None:
            from keras_sagan.torch_files import load_state_dict

            self._sha256 = file_sha256(weights_path)
            load_fid_weights(self.model, units, load_state_dict(weights_path), weights_path)
        self._forwards: dict[tuple[int, int], Any] = {}  # (height, width) -> the compiled forward pass.

    @property
    def weightsfile_sha256(self) -> str:
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
            self._forwards[size] = backend.compile_image_function(self._forward_fn, *size)
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
    if weights is not None and os.fspath(weights) == RANDOM_WEIGHTS:
        return FIDInceptionExtractor(None, resize)
    if weights is None:
        path = fid_weights_path()
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise UsageError(f"FID Inception weights file not found: {path!r}; download {FID_WEIGHTS_URL}")
        if os.path.basename(path) == FID_WEIGHTS_URL.rsplit("/", 1)[-1] and file_sha256(path) != FID_WEIGHTS_SHA256:
            raise UsageError(
                f"{path}: SHA-256 {file_sha256(path)[:16]}... is not pytorch-fid's {FID_WEIGHTS_SHA256[:16]}... "
                f"(a damaged or other file); download {FID_WEIGHTS_URL} again"
            )
    return FIDInceptionExtractor(path, resize)
