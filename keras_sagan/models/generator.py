"""The SAGAN generator."""

import math

import keras
from keras import ops

from keras_sagan.layers import BatchNormalization, SelfAttention, SpectralNormalization
from keras_sagan.models.architectures import (
    RESNET_GENERATOR,
    check_attention_resolutions,
    check_common,
    check_labels,
)
from keras_sagan.models.blocks import GeneratorBlock, sn_conv


def _dcgan_stage(filters, kernel_size, strides, padding):
    return keras.Sequential(
        [
            SpectralNormalization(keras.layers.Conv2DTranspose(filters, kernel_size, strides, padding=padding)),
            BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True),
            keras.layers.ReLU(),
        ]
    )


@keras.saving.register_keras_serializable(package="keras_sagan")
class Generator(keras.Model):
    """Maps noise `z` (and optionally class labels) to images in [-1, 1].

    Two architectures:
    - `"dcgan"`: the PyTorch reference's generator, generalised to any
      `image_size` and `conv_dim`: an SN 4x4 transposed conv from `z` to a
      4x4 map of `conv_dim * image_size / 8` channels, then SN transposed-conv
      + BatchNorm + ReLU stages that double the resolution and halve the
      channels, and an unnormalised transposed conv + tanh to RGB. Default
      attention at the two largest intermediate resolutions (16 and 32 at
      64x64, as in the reference).
    - `"resnet"`: the paper's residual generator: SN dense to 4x4, residual
      up-blocks with (conditional) BatchNorm, BN-ReLU-SN conv3x3-tanh output.
      Default attention at `image_size // 2`.

    Args:
        image_size: int. 32, 64 or 128. Defaults to `64`.
        z_dim: int. Noise dimension. Defaults to `128`.
        conv_dim: int. Base channel count. Defaults to `64`.
        architecture: str. `"dcgan"` or `"resnet"`. Defaults to `"dcgan"`.
        attention_resolutions: sequence of int or None. Feature resolutions
            after which a `SelfAttention` block runs. `None` picks the
            architecture's default; `()` disables attention.
        attention_variant: str. `"sagan"` or `"reference"` (see
            `SelfAttention`). Defaults to `"sagan"`.
        num_classes: int or None. Class-conditional BatchNorm (resnet only).
        query_chunk_size: int, `"auto"` or None. Memory-efficient attention
            chunking (see `SelfAttention`). Defaults to `"auto"`.

    Call arguments:
        z: `(B, z_dim)` float noise.
        labels: `(B,)` int class labels; required iff `num_classes` is set.
        training: bool. BatchNorm batch statistics and SN power iteration.
        return_attention: bool. Also return the list of attention maps.

    Example:

    >>> g = keras_sagan.build_generator("celeba64")
    >>> images = g(np.random.randn(4, 128).astype("float32"), training=False)
    >>> images.shape
    (4, 64, 64, 3)

    Reference:
        Zhang et al., "Self-Attention Generative Adversarial Networks", 2019.
    """

    def __init__(
        self,
        image_size=64,
        z_dim=128,
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
        if not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"z_dim must be an int >= 1; received {z_dim!r}.")
        num_up = int(math.log2(image_size)) - 2  # 4x4 -> image_size
        if architecture == "dcgan":
            available = [4 * 2**i for i in range(num_up)]  # intermediate maps only
            default = available[-2:]
            filters = conv_dim * image_size // 8
            self.initial = _dcgan_stage(filters, 4, 1, "valid")
            self._block_names = []
            for i in range(num_up - 1):
                filters //= 2
                name = f"up{i}"
                setattr(self, name, _dcgan_stage(filters, 4, 2, "same"))
                self._block_names.append(name)
            self.to_rgb = keras.layers.Conv2DTranspose(3, 4, 2, padding="same")
        else:
            table = RESNET_GENERATOR[image_size]
            available = [8 * 2**i for i in range(num_up)]
            default = [image_size // 2]
            self.initial = SpectralNormalization(keras.layers.Dense(16 * conv_dim * table["in"][0]))
            self._block_names = []
            for i, multiplier in enumerate(table["out"]):
                name = f"up{i}"
                setattr(self, name, GeneratorBlock(conv_dim * multiplier, num_classes))
                self._block_names.append(name)
            self.output_norm = BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True)
            self.to_rgb = sn_conv(3, 3)
        resolutions = default if attention_resolutions is None else attention_resolutions
        self._attention = check_attention_resolutions(resolutions, available, "Generator")
        for resolution in self._attention:
            setattr(
                self,
                f"attention_{resolution}",
                SelfAttention(attention_variant, query_chunk_size=query_chunk_size, name=f"attention_{resolution}"),
            )

        self.image_size = image_size
        self.z_dim = z_dim
        self.conv_dim = conv_dim
        self.architecture = architecture
        self.attention_resolutions = attention_resolutions
        self.attention_variant = attention_variant
        self.num_classes = num_classes
        self.query_chunk_size = query_chunk_size

    @property
    def attention_layers(self):
        """The `SelfAttention` layers, in forward order."""
        return [getattr(self, f"attention_{r}") for r in self._attention]

    def build(self, input_shape=None):
        labels = None if self.num_classes is None else ops.zeros((1,), "int32")
        self.call(ops.zeros((1, self.z_dim)), labels, training=False)
        self.built = True

    def _maybe_attend(self, x, training, return_attention, maps):
        resolution = x.shape[1]
        if resolution not in self._attention:
            return x
        layer = getattr(self, f"attention_{resolution}")
        if return_attention:
            x, attention = layer(x, training=training, return_attention=True)
            maps.append(attention)
            return x
        return layer(x, training=training)

    def call(self, z, labels=None, training=None, return_attention=False):
        if len(z.shape) != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have shape (batch, {self.z_dim}); received shape {tuple(z.shape)}.")
        labels = check_labels(labels, self.num_classes, "Generator")
        maps = []
        if self.architecture == "dcgan":
            x = self.initial(ops.reshape(z, (-1, 1, 1, self.z_dim)), training=training)
            x = self._maybe_attend(x, training, return_attention, maps)
            for name in self._block_names:
                x = getattr(self, name)(x, training=training)
                x = self._maybe_attend(x, training, return_attention, maps)
            x = self.to_rgb(x)
        else:
            x = self.initial(z, training=training)
            x = ops.reshape(x, (-1, 4, 4, x.shape[-1] // 16))
            for name in self._block_names:
                x = getattr(self, name)(x, labels, training=training)
                x = self._maybe_attend(x, training, return_attention, maps)
            x = ops.relu(self.output_norm(x, training=training))
            x = self.to_rgb(x, training=training)
        images = ops.tanh(ops.cast(x, "float32"))
        if return_attention:
            return images, maps
        return images

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "z_dim": self.z_dim,
                "conv_dim": self.conv_dim,
                "architecture": self.architecture,
                "attention_resolutions": self.attention_resolutions,
                "attention_variant": self.attention_variant,
                "num_classes": self.num_classes,
                "query_chunk_size": self.query_chunk_size,
            }
        )
        return config
