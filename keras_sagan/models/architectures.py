"""Declarative per-architecture tables for G and D, the argument checks both share, and their common base.

Each architecture is data: channel multipliers of `conv_dim` per image size, which feature maps may
take attention, and the default attention placement. `Generator` and `Discriminator` are one class
each that build their block lists from these tables.
"""

import dataclasses
import inspect
import re

import numpy as np
from keras import ops

from keras_sagan.errors import bad_value, one_line
from keras_sagan.layers import SelfAttention

ARCHITECTURES = ("dcgan", "resnet")
IMAGE_SIZES = (32, 64, 128)


@dataclasses.dataclass(frozen=True)
class GeneratorLayout:
    """The generator of one architecture at one image size.

    stem: channels of the 4x4 map made from `z`, in multiples of `conv_dim`.
    blocks: output channels of each up-sampling block, in multiples of `conv_dim`.
    attend_stem: whether attention may run on the stem's 4x4 map (the reference's dcgan allows it).
    attention: the default attention resolutions, in the order their layers are created.
    """

    stem: int
    blocks: tuple
    attend_stem: bool
    attention: tuple

    def resolutions(self):
        """Feature-map resolutions at which attention may run, in forward order."""
        return ((4,) if self.attend_stem else ()) + tuple(8 * 2**i for i in range(len(self.blocks)))


@dataclasses.dataclass(frozen=True)
class DiscriminatorLayout:
    """The discriminator of one architecture at one image size.

    blocks: output channels of each block, in multiples of `conv_dim`.
    downsample: whether each block halves the resolution.
    attention: the default attention resolutions, in the order their layers are created.
    """

    blocks: tuple
    downsample: tuple
    attention: tuple

    def resolutions(self, image_size):
        """The output resolution of each block, in forward order."""
        sizes, size = [], image_size
        for halves in self.downsample:
            size //= 2 if halves else 1
            sizes.append(size)
        return tuple(sizes)


# dcgan: the PyTorch reference's transposed-conv (G) and stride-2 conv (D) stages, generalised to
# any size: G starts at conv_dim * image_size / 8 channels and halves them per stage, and a last
# transposed conv makes the image; attention on the two largest maps (16 and 32 in G, 8 and 4 in
# D at 64x64, as in the reference). resnet: the paper's residual BigGAN/SNGAN-style networks,
# attention at image_size / 2.
GENERATOR_LAYOUTS = {
    "dcgan": {
        32: GeneratorLayout(stem=4, blocks=(2, 1), attend_stem=True, attention=(8, 16)),
        64: GeneratorLayout(stem=8, blocks=(4, 2, 1), attend_stem=True, attention=(16, 32)),
        128: GeneratorLayout(stem=16, blocks=(8, 4, 2, 1), attend_stem=True, attention=(32, 64)),
    },
    "resnet": {
        32: GeneratorLayout(stem=4, blocks=(4, 4, 4), attend_stem=False, attention=(16,)),
        64: GeneratorLayout(stem=16, blocks=(16, 8, 4, 2), attend_stem=False, attention=(32,)),
        128: GeneratorLayout(stem=16, blocks=(16, 8, 4, 2, 1), attend_stem=False, attention=(64,)),
    },
}
DISCRIMINATOR_LAYOUTS = {
    "dcgan": {
        32: DiscriminatorLayout(blocks=(1, 2, 4), downsample=(True,) * 3, attention=(8, 4)),
        64: DiscriminatorLayout(blocks=(1, 2, 4, 8), downsample=(True,) * 4, attention=(8, 4)),
        128: DiscriminatorLayout(blocks=(1, 2, 4, 8, 16), downsample=(True,) * 5, attention=(8, 4)),
    },
    "resnet": {
        32: DiscriminatorLayout(blocks=(4, 4, 4, 4), downsample=(True, True, False, False), attention=(16,)),
        64: DiscriminatorLayout(blocks=(1, 2, 4, 8, 16), downsample=(True,) * 4 + (False,), attention=(32,)),
        128: DiscriminatorLayout(blocks=(1, 2, 4, 8, 16, 16), downsample=(True,) * 5 + (False,), attention=(64,)),
    },
}


def check_common(architecture, image_size, conv_dim, num_classes, channels):
    """The arguments `Generator` and `Discriminator` share, checked in one place (one-line `ValueError`s)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(bad_value("architecture", architecture, f"one of {ARCHITECTURES}"))
    if image_size not in IMAGE_SIZES:
        raise ValueError(bad_value("image_size", image_size, f"one of {IMAGE_SIZES}"))
    if not isinstance(conv_dim, int) or isinstance(conv_dim, bool) or conv_dim < 1:
        raise ValueError(bad_value("conv_dim", conv_dim, "an int >= 1"))
    if num_classes is not None:
        if architecture == "dcgan":
            expected = "None with architecture='dcgan' (it is unconditional; use architecture='resnet')"
            raise ValueError(bad_value("num_classes", num_classes, expected))
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(bad_value("num_classes", num_classes, "None or an int >= 1"))
    check_channels(channels)


CHANNELS = (1, 3)
"""Image channel counts the networks take and make: grey (1) or RGB (3)."""


def check_channels(channels):
    if channels not in CHANNELS or isinstance(channels, bool):
        raise ValueError(bad_value("channels", channels, f"one of {CHANNELS} (grey or RGB)"))


def check_attention_resolutions(resolutions, available, model_name):
    try:
        checked = tuple(int(r) for r in resolutions)
    except (TypeError, ValueError):
        checked = None
    if checked is None or any(r not in available for r in checked):
        expected = f"resolutions of the {model_name}'s feature maps, from {tuple(sorted(set(available)))}"
        raise ValueError(bad_value("attention_resolutions", resolutions, expected))
    return tuple(dict.fromkeys(checked))  # A repeated resolution is one attention layer, as on main.


def check_labels(labels, num_classes, model_name, allow_weights=False):
    """Validates class labels: required iff conditional, and in range.

    With `allow_weights`, float `(batch, num_classes)` class weights (a blend of classes, as class
    interpolation feeds) are accepted too and returned as float32.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError(
                f"`labels` must be None for the unconditional {model_name} (num_classes=None); "
                f"received: labels.shape={tuple(labels.shape)}"
            )
        return None
    if labels is None:
        raise ValueError(
            bad_value("labels", None, f"given: the {model_name} is conditional (num_classes={num_classes})")
        )
    if allow_weights and len(labels.shape) == 2 and labels.shape[-1] == num_classes:
        return ops.cast(labels, "float32")
    if len(labels.shape) != 1:
        raise ValueError(f"`labels` must have shape (batch,); received: labels.shape={tuple(labels.shape)}")
    try:
        values = np.asarray(labels)
    except Exception:  # A symbolic tensor inside a traced function.
        values = None
    if values is not None and values.size and (values.min() < 0 or values.max() >= num_classes):
        raise ValueError(
            f"`labels` must be in [0, {num_classes}); received: labels from {values.min()} to {values.max()}"
        )
    return ops.cast(labels, "int32")


def check_input_shape(name, shape, expected):
    """`shape` (leading batch dimension free) must equal `expected`; one-line error naming both."""
    shape = tuple(shape)
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        shown = "(batch, " + ", ".join(str(e) for e in expected[1:]) + ")"
        raise ValueError(f"`{name}` must have shape {shown}; received: {name}.shape={shape}")


class WeightsLoading:
    """`load_weights` for `Generator`/`Discriminator` that reports another architecture's file in one line.

    Keras' own message is many lines listing every object; this keeps its first mismatch, which
    names the layer, and says which file and network it is about.
    """

    def load_weights(self, filepath, *args, **kwargs):
        try:
            return super().load_weights(filepath, *args, **kwargs)
        except ValueError as err:
            text = str(err)
            match = re.search(r"Example error message for object [^:]*:\s*(.+)", text) or re.search(
                r"(Layer '.*)", text
            )
            detail = match.group(1).strip().splitlines()[0] if match else one_line(err)
            raise ValueError(
                f"{filepath} does not hold weights of this {type(self).__name__} (another architecture?): {detail}"
            ) from None


class SaganNetwork(WeightsLoading):
    """What `Generator` and `Discriminator` share beyond their tables: config, presets, attention layers.

    A subclass stores every constructor argument under its own name, so `get_config` returns exactly
    those (keras-hub's rule), and names its piece of a preset in `preset_role`.
    """

    preset_role = None

    def get_config(self):
        config = super().get_config()
        parameters = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        config.update({name: getattr(self, name) for name in names})
        return config

    @classmethod
    def from_preset(cls, preset, load_weights=True):
        """Builds the network of this class that a preset holds, with its weights.

        A generator gets the weights to sample from (the EMA ones when saved); a discriminator is
        saved for fine-tuning, and a preset without one is a one-line error.

        Args:
            preset: str or PathLike. A registered name (`keras_sagan.list_presets()`), a preset
                folder, `"hf://owner/model"` or `"kaggle://owner/model/keras/variant[/version]"`
                (downloaded by the hub's client into its cache, or read from there offline).
            load_weights: bool. False builds the architecture with random weights. Defaults to True.

        Returns:
            A built network of this class.

        Example:

        >>> generator = keras_sagan.Generator.from_preset("hf://owner/sagan-model")
        >>> images = generator(np.random.randn(4, generator.z_dim).astype("float32"), training=False)
        """
        from keras_sagan.models.presets import load_preset

        return load_preset(preset, cls.preset_role, load_weights=load_weights)

    def _make_attention(self, resolutions, variant, query_chunk_size):
        """One `SelfAttention` layer per resolution, named `attention_<resolution>`, its checkpoint name."""
        return [SelfAttention(variant, query_chunk_size=query_chunk_size, name=f"attention_{r}") for r in resolutions]

    def _attend(self, layer, x, training, return_attention, maps):
        """`layer(x)`, the `SelfAttention` layer's output; with `return_attention` its map joins `maps`."""
        if not return_attention:
            return layer(x, training=training)
        x, attention = layer(x, training=training, return_attention=True)
        maps.append(attention)
        return x
