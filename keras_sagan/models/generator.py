"""The SAGAN generator: one class, its block stack read from a per-architecture table."""

import keras
from keras import ops

from keras_sagan import backend
from keras_sagan.errors import bad_value
from keras_sagan.layers import BatchNormalization, SpectralNormalization
from keras_sagan.models.architectures import (
    GENERATOR_LAYOUTS,
    SaganNetwork,
    check_attention_resolutions,
    check_common,
    check_input_shape,
    check_labels,
)
from keras_sagan.models.blocks import GeneratorBlock, dcgan_up_stage, sn_conv


@keras.saving.register_keras_serializable(package="keras_sagan")
class Generator(SaganNetwork, keras.Model):
    """Maps noise `z` (and optionally class labels) to images in [-1, 1].

    Two architectures, each a table in `architectures.GENERATOR_LAYOUTS`:
    - `"dcgan"`: the PyTorch reference's generator, generalised to any
      `image_size` and `conv_dim`: an SN 4x4 transposed conv from `z` to a
      4x4 map of `conv_dim * image_size / 8` channels, then SN transposed-conv
      + BatchNorm + ReLU stages that double the resolution and halve the
      channels, and an unnormalised transposed conv + tanh to the image. Default
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
        channels: int. Image channels made: 1 (grey, e.g. Fashion-MNIST) or
            3 (RGB). Only the last conv depends on it. Defaults to `3`.

    Call arguments:
        z: `(B, z_dim)` float noise.
        labels: `(B,)` int class labels; required iff `num_classes` is set.
            `(B, num_classes)` float class weights blend the classes' batch-norm
            scales and offsets (interpolation between classes).
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

    preset_role = "generator"

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
        channels=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_common(architecture, image_size, conv_dim, num_classes, channels)
        if not isinstance(z_dim, int) or isinstance(z_dim, bool) or z_dim < 1:
            raise ValueError(bad_value("z_dim", z_dim, "an int >= 1"))
        self._layout = layout = GENERATOR_LAYOUTS[architecture][image_size]
        resolutions = layout.attention if attention_resolutions is None else attention_resolutions
        self._attention = check_attention_resolutions(resolutions, layout.resolutions(), "Generator")

        # Layers are created in the order of main 3d4666c (stem, blocks, head, attention): the
        # weight order, which the optimizer's checkpointed slots follow.
        if architecture == "dcgan":
            self.initial = dcgan_up_stage(conv_dim * layout.stem, strides=1, padding="valid")
            self.stages = [dcgan_up_stage(conv_dim * m) for m in layout.blocks]
            self.to_rgb = keras.layers.Conv2DTranspose(channels, 4, 2, padding="same")
        else:
            self.initial = SpectralNormalization(keras.layers.Dense(16 * conv_dim * layout.stem))
            self.stages = [GeneratorBlock(conv_dim * m, num_classes) for m in layout.blocks]
            self.output_norm = BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True)
            self.to_rgb = sn_conv(channels, 3)
        self.attention = self._make_attention(self._attention, attention_variant, query_chunk_size)
        backend.track_checkpoint_names(self, self.named_blocks())

        self.image_size = image_size
        self.z_dim = z_dim
        self.conv_dim = conv_dim
        self.architecture = architecture
        self.attention_resolutions = attention_resolutions
        self.attention_variant = attention_variant
        self.num_classes = num_classes
        self.query_chunk_size = query_chunk_size
        self.channels = channels

    def named_blocks(self):
        """`{name: layer}` of the stem, the blocks (`up0`, ...), the attention layers (`attention_16`,
        ...) and the head: stable names, the checkpoint keys of every run."""
        named = {"initial": self.initial, **{f"up{i}": block for i, block in enumerate(self.stages)}}
        named.update({f"attention_{r}": self._attention_at(r) for r in self._attention})
        if hasattr(self, "output_norm"):
            named["output_norm"] = self.output_norm
        named["to_rgb"] = self.to_rgb
        return named

    @property
    def attention_layers(self):
        """The `SelfAttention` layers, in forward order."""
        return [self._attention_at(r) for r in sorted(self._attention)]  # resolutions grow in G

    def _attention_at(self, resolution):
        return self.attention[self._attention.index(resolution)] if resolution in self._attention else None

    def build(self, input_shape=None):
        if input_shape is not None:
            check_input_shape("z", input_shape, (None, self.z_dim))
        labels = None if self.num_classes is None else ops.zeros((1,), "int32")
        self.call(ops.zeros((1, self.z_dim)), labels, training=False)
        self.built = True

    def _maybe_attend(self, x, training, return_attention, maps):
        layer = self._attention_at(x.shape[1])
        return x if layer is None else self._attend(layer, x, training, return_attention, maps)

    def call(self, z, labels=None, training=None, return_attention=False):
        check_input_shape("z", z.shape, (None, self.z_dim))
        labels = check_labels(labels, self.num_classes, "Generator", allow_weights=True)
        maps = []

        def attend(x):
            return self._maybe_attend(x, training, return_attention, maps)

        if self.architecture == "dcgan":  # 1x1 noise -> 4x4 by a valid transposed conv
            x = attend(self.initial(ops.reshape(z, (-1, 1, 1, self.z_dim)), training=training))
            for block in self.stages:
                x = attend(block(x, training=training))
            x = self.to_rgb(x)
        else:  # dense -> 4x4, residual blocks that take the labels, BN-ReLU-conv head
            x = ops.reshape(self.initial(z, training=training), (-1, 4, 4, self.conv_dim * self._layout.stem))
            for block in self.stages:
                x = attend(block(x, labels, training=training))
            x = self.to_rgb(ops.relu(self.output_norm(x, training=training)), training=training)
        images = ops.tanh(ops.cast(x, "float32"))
        if return_attention:
            return images, maps
        return images

    def save_to_preset(self, preset_dir, metadata=None):
        """Writes this generator as a preset folder (keras-hub's layout; see `keras_sagan.preset_format`).

        Args:
            preset_dir: str or PathLike. The folder to create (never overwritten).
            metadata: dict or None. Added to `metadata.json` and the model card (for instance
                `dataset`, `certificate` with its `scores`, `sampling`).

        Returns:
            The preset folder's absolute path.

        Example:

        >>> generator.save_to_preset("presets/mine", metadata={"dataset": "Fashion-MNIST"})
        """
        from keras_sagan.preset_format import save_preset

        return save_preset(preset_dir, self, metadata=metadata)
