"""keras_sagan: Self-Attention GAN layers, models, training and export for Keras 3."""

from keras_sagan.export import export_generator
from keras_sagan.layers import ConditionalBatchNormalization, SelfAttention, SpectralNormalization
from keras_sagan.models import Discriminator, Generator, build_discriminator, build_generator, list_presets
from keras_sagan.training import SAGAN


def build_sagan(preset="celeba64", seed=None, **overrides):
    """Builds a `SAGAN` (generator + discriminator) from a preset.

    Args:
        preset: str. A name from `list_presets()`.
        seed: int or None. Seeds the noise drawn during training.
        **overrides: constructor arguments for both networks (`z_dim` goes to
            the generator only).

    Example:

    >>> gan = keras_sagan.build_sagan("celeba64", seed=0)
    >>> gan.compile(loss="hinge", ema_decay=0.999)
    """
    generator = build_generator(preset, **overrides)
    discriminator = build_discriminator(preset, **overrides)
    return SAGAN(generator, discriminator, seed=seed)


__version__ = "0.1.0"
__all__ = [
    "SAGAN",
    "ConditionalBatchNormalization",
    "Discriminator",
    "Generator",
    "SelfAttention",
    "SpectralNormalization",
    "build_discriminator",
    "build_generator",
    "build_sagan",
    "export_generator",
    "list_presets",
]
