"""Generator, Discriminator, their building blocks and presets."""

from keras_sagan.models.blocks import DiscriminatorBlock, GeneratorBlock
from keras_sagan.models.discriminator import Discriminator
from keras_sagan.models.generator import Generator
from keras_sagan.models.presets import PRESETS, build_discriminator, build_generator, list_presets

__all__ = [
    "PRESETS",
    "Discriminator",
    "DiscriminatorBlock",
    "Generator",
    "GeneratorBlock",
    "build_discriminator",
    "build_generator",
    "list_presets",
]
