"""The SAGAN discriminator: one class, its block stack read from a per-architecture table."""

import keras
from keras import ops

from keras_sagan import backend
from keras_sagan.layers import SpectralNormalization
from keras_sagan.models.architectures import (
    DISCRIMINATOR_LAYOUTS,
    SaganNetwork,
    check_attention_resolutions,
    check_common,
    check_input_shape,
    check_labels,
)
from keras_sagan.models.blocks import DiscriminatorBlock, dcgan_down_stage, leaky_relu_0_1

__all__ = ["Discriminator", "leaky_relu_0_1"]


@keras.saving.register_keras_serializable(package="keras_sagan")
class Discriminator(SaganNetwork, keras.Model):
    """Scores images (and optionally labels) with one unbounded logit each.

    Two architectures, each a table in `architectures.DISCRIMINATOR_LAYOUTS`:
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
        channels: int. Image channels taken: 1 (grey) or 3 (RGB). Defaults
            to `3`.

    Call arguments:
        images: `(B, image_size, image_size, channels)` in [-1, 1].
        labels: `(B,)` int class labels; required iff `num_classes` is set.
        training: bool. SN power iteration.
        return_attention: bool. Also return the list of attention maps.

    Example:

    >>> d = keras_sagan.build_discriminator("celeba64")
    >>> d(np.zeros((2, 64, 64, 3), "float32")).shape
    (2,)
    """

    preset_role = "discriminator"

    def __init__(
        self,
        image_size=64,
        conv_dim=64,
        architecture="dcgan",
        attention_resolutions=None,
        attention_variant="sagan",
        num_classes=None,
        query_chunk_size="auto",
        channels=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_common(architecture, image_size, conv_dim, num_classes, channels)
        layout = DISCRIMINATOR_LAYOUTS[architecture][image_size]
        available = layout.resolutions(image_size)
        resolutions = layout.attention if attention_resolutions is None else attention_resolutions
        self._attention = check_attention_resolutions(resolutions, available, "Discriminator")
        # Attention at a resolution runs after the first block that outputs it: block index -> resolution.
        self._attention_after = {}
        for index, resolution in enumerate(available):
            if resolution in self._attention and resolution not in self._attention_after.values():
                self._attention_after[index] = resolution

        # Layers are created in the order of main 3d4666c (blocks, head, attention): the weight
        # order, which the optimizer's checkpointed slots follow.
        if architecture == "dcgan":
            self.stages = [dcgan_down_stage(conv_dim * m) for m in layout.blocks]
            self.logit = keras.layers.Conv2D(1, 4, padding="valid")
        else:
            self.stages = [
                DiscriminatorBlock(conv_dim * m, downsample, preactivation=i > 0)
                for i, (m, downsample) in enumerate(zip(layout.blocks, layout.downsample))
            ]
            self.logit = SpectralNormalization(keras.layers.Dense(1))
            if num_classes is not None:
                self.projection = SpectralNormalization(
                    keras.layers.Embedding(num_classes, conv_dim * layout.blocks[-1])
                )
        self.attention = self._make_attention(self._attention, attention_variant, query_chunk_size)
        backend.track_checkpoint_names(self, self.named_blocks())

        self.image_size = image_size
        self.conv_dim = conv_dim
        self.architecture = architecture
        self.attention_resolutions = attention_resolutions
        self.attention_variant = attention_variant
        self.num_classes = num_classes
        self.query_chunk_size = query_chunk_size
        self.channels = channels

    def named_blocks(self):
        """`{name: layer}` of the blocks (`down0`, ...), the attention layers (`attention_8`, ...)
        and the head: stable names, the checkpoint keys of every run."""
        named = {f"down{i}": block for i, block in enumerate(self.stages)}
        named.update({f"attention_{r}": self._attention_at(r) for r in self._attention})
        named["logit"] = self.logit
        if hasattr(self, "projection"):
            named["projection"] = self.projection
        return named

    def _attention_at(self, resolution):
        return self.attention[self._attention.index(resolution)]

    @property
    def attention_layers(self):
        """The `SelfAttention` layers, in forward order."""
        return [self._attention_at(r) for r in self._attention_after.values()]

    def build(self, input_shape=None):
        if input_shape is not None:
            check_input_shape("images", input_shape, (None, self.image_size, self.image_size, self.channels))
        labels = None if self.num_classes is None else ops.zeros((1,), "int32")
        self.call(ops.zeros((1, self.image_size, self.image_size, self.channels)), labels, training=False)
        self.built = True

    def call(self, images, labels=None, training=None, return_attention=False):
        check_input_shape("images", images.shape, (None, self.image_size, self.image_size, self.channels))
        labels = check_labels(labels, self.num_classes, "Discriminator")
        x = ops.cast(images, self.compute_dtype)
        maps = []
        for index, block in enumerate(self.stages):
            x = block(x, training=training)
            if index in self._attention_after:
                x = self._attend(self._attention_at(self._attention_after[index]), x, training, return_attention, maps)
        if self.architecture == "dcgan":  # a valid 4x4 conv of the 4x4 map
            logits = ops.reshape(self.logit(x), (-1,))
        else:  # global sum pooling, SN dense, and the projection term when conditional
            features = ops.sum(ops.relu(x), axis=(1, 2))
            logits = ops.reshape(self.logit(features, training=training), (-1,))
            if self.num_classes is not None:
                embedded = self.projection(labels, training=training)
                logits = logits + ops.sum(embedded * features, axis=-1)
        logits = ops.cast(logits, "float32")
        if return_attention:
            return logits, maps
        return logits
