"""The SAGAN discriminator."""

import math

import keras
from keras import ops

from keras_sagan.layers import SelfAttention, SpectralNormalization
from keras_sagan.models.architectures import (
    RESNET_DISCRIMINATOR,
    check_attention_resolutions,
    check_common,
    check_labels,
)
from keras_sagan.models.blocks import DiscriminatorBlock


@keras.saving.register_keras_serializable(package="keras_sagan")
def leaky_relu_0_1(x):
    """LeakyReLU with slope 0.1, as `where(x > 0, x, 0.1 x)`.

    Not `tf.nn.leaky_relu`: when its output feeds an attention block's matmul,
    Grappler's remapper (TF 2.21 with oneDNN) fuses conv + BiasAdd + LeakyRelu
    although LeakyReluGrad still needs the BiasAdd, fails, and logs "remapper
    failed" for every traced train step. A `where` rather than `max(x, 0.1 x)`
    keeps a boolean mask for the backward pass instead of a second float copy.
    """
    return ops.where(x > 0, x, 0.1 * x)


@keras.saving.register_keras_serializable(package="keras_sagan")
class Discriminator(keras.Model):
    """Scores images (and optionally labels) with one unbounded logit each.

    Two architectures:
    - `"dcgan"`: the PyTorch reference's discriminator, generalised: SN 4x4
      stride-2 convs + LeakyReLU(0.1) doubling the channels from `conv_dim`
      down to a 4x4 map, then an unnormalised 4x4 conv to one logit. Default
      attention at 8x8 and 4x4, as in the reference at 64x64.
    - `"resnet"`: the paper's residual discriminator: SN residual down-blocks,
      ReLU, global sum pooling, an SN dense logit, plus a projection term
      `<embed(y), h>` (Miyato & Koyama 2018) when conditional. Default
      attention at `image_size // 2`.

    Args:
        image_size: int. 32, 64 or 128. Defaults to `64`.
        conv_dim: int. Base channel count. Defaults to `64`.
        architecture: str. `"dcgan"` or `"resnet"`. Defaults to `"dcgan"`.
        attention_resolutions: sequence of int or None. Feature resolutions
            after which a `SelfAttention` block runs; `None` for the default.
        attention_variant: str. `"sagan"` or `"reference"`. Defaults to
            `"sagan"`.
        num_classes: int or None. Projection discriminator (resnet only).
        query_chunk_size: int, `"auto"` or None. Memory-efficient attention
            chunking (see `SelfAttention`). Defaults to `"auto"`.

    Call arguments:
        images: `(B, image_size, image_size, 3)` in [-1, 1].
        labels: `(B,)` int class labels; required iff `num_classes` is set.
        training: bool. SN power iteration.
        return_attention: bool. Also return the list of attention maps.

    Example:

    >>> d = keras_sagan.build_discriminator("celeba64")
    >>> d(np.zeros((2, 64, 64, 3), "float32")).shape
    (2,)
    """

    def __init__(
        self,
        image_size=64,
        conv_dim=64,
        architecture="dcgan",
        attention_resolutions=None,
        attention_variant="sagan",
        num_classes=None,
        query_chunk_size="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_common(architecture, image_size, conv_dim, num_classes)
        self._block_names = []
        if architecture == "dcgan":
            num_down = int(math.log2(image_size)) - 2  # image_size -> 4x4
            available = [image_size // 2 ** (i + 1) for i in range(num_down)]
            default = available[-2:]
            for i in range(num_down):
                name = f"down{i}"
                stage = keras.Sequential(
                    [
                        SpectralNormalization(keras.layers.Conv2D(conv_dim * 2**i, 4, 2, padding="same")),
                        keras.layers.Activation(leaky_relu_0_1),
                    ]
                )
                setattr(self, name, stage)
                self._block_names.append(name)
            self.logit = keras.layers.Conv2D(1, 4, padding="valid")
        else:
            table = RESNET_DISCRIMINATOR[image_size]
            available, resolution = [], image_size
            for i, (multiplier, downsample) in enumerate(zip(table["out"], table["downsample"])):
                name = f"down{i}"
                setattr(self, name, DiscriminatorBlock(conv_dim * multiplier, downsample, preactivation=i > 0))
                self._block_names.append(name)
                resolution //= 2 if downsample else 1
                available.append(resolution)
            default = [image_size // 2]
            self.logit = SpectralNormalization(keras.layers.Dense(1))
            if num_classes is not None:
                self.projection = SpectralNormalization(
                    keras.layers.Embedding(num_classes, conv_dim * table["out"][-1])
                )
        resolutions = default if attention_resolutions is None else attention_resolutions
        self._attention = check_attention_resolutions(resolutions, available, "Discriminator")
        self._attention_after = {}  # resolution -> first block that outputs it
        for name, resolution in zip(self._block_names, available):
            if resolution in self._attention and resolution not in self._attention_after.values():
                self._attention_after[name] = resolution
        for resolution in self._attention:
            setattr(
                self,
                f"attention_{resolution}",
                SelfAttention(attention_variant, query_chunk_size=query_chunk_size, name=f"attention_{resolution}"),
            )

        self.image_size = image_size
        self.conv_dim = conv_dim
        self.architecture = architecture
        self.attention_resolutions = attention_resolutions
        self.attention_variant = attention_variant
        self.num_classes = num_classes
        self.query_chunk_size = query_chunk_size

    @property
    def attention_layers(self):
        """The `SelfAttention` layers, in forward order."""
        return [getattr(self, f"attention_{r}") for r in self._attention_after.values()]

    def build(self, input_shape=None):
        labels = None if self.num_classes is None else ops.zeros((1,), "int32")
        self.call(ops.zeros((1, self.image_size, self.image_size, 3)), labels, training=False)
        self.built = True

    def call(self, images, labels=None, training=None, return_attention=False):
        expected = (self.image_size, self.image_size, 3)
        if len(images.shape) != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape (batch, *{expected}); received shape {tuple(images.shape)}.")
        labels = check_labels(labels, self.num_classes, "Discriminator")
        x = ops.cast(images, self.compute_dtype)
        maps = []
        for name in self._block_names:
            x = getattr(self, name)(x, training=training)
            if name in self._attention_after:
                layer = getattr(self, f"attention_{self._attention_after[name]}")
                if return_attention:
                    x, attention = layer(x, training=training, return_attention=True)
                    maps.append(attention)
                else:
                    x = layer(x, training=training)
        if self.architecture == "dcgan":
            logits = ops.reshape(self.logit(x), (-1,))
        else:
            features = ops.sum(ops.relu(x), axis=(1, 2))
            logits = ops.reshape(self.logit(features, training=training), (-1,))
            if self.num_classes is not None:
                embedded = self.projection(labels, training=training)
                logits = logits + ops.sum(embedded * features, axis=-1)
        logits = ops.cast(logits, "float32")
        if return_attention:
            return logits, maps
        return logits

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "conv_dim": self.conv_dim,
                "architecture": self.architecture,
                "attention_resolutions": self.attention_resolutions,
                "attention_variant": self.attention_variant,
                "num_classes": self.num_classes,
                "query_chunk_size": self.query_chunk_size,
            }
        )
        return config
