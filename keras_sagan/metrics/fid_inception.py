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
so the network runs on any Keras backend. The weights file, resizing and the extractor object are
in `fid_extractor.py`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_sagan.errors import UsageError

IMAGE_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008
BN_EPSILON = 1e-3  # torchvision's BasicConv2d, as in the TF graph.


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
