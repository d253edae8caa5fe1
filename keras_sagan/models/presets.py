"""Named model configurations and the builders that read them."""

import copy

from keras_sagan.errors import bad_value
from keras_sagan.models.discriminator import Discriminator
from keras_sagan.models.generator import Generator

# Presets are plain data: shared arguments, per-network extras, a description.
PRESETS = {
    "celeba64": {
        "description": "The PyTorch reference's 64x64 CelebA SAGAN (dcgan, reference attention), unconditional.",
        "common": {
            "image_size": 64,
            "conv_dim": 64,
            "architecture": "dcgan",
            "attention_variant": "reference",
        },
        # attention_resolutions None: the dcgan default, (16, 32) in G and
        # (8, 4) in D at 64x64, follows image_size overrides.
        "generator": {"z_dim": 128, "attention_resolutions": None},
        "discriminator": {"attention_resolutions": None},
    },
    "cifar10_32": {
        "description": "Residual SAGAN at 32x32 for CIFAR-10; pass num_classes=10 for the conditional model.",
        "common": {"image_size": 32, "conv_dim": 64, "architecture": "resnet", "attention_variant": "sagan"},
        "generator": {"z_dim": 128, "attention_resolutions": (16,)},
        "discriminator": {"attention_resolutions": (16,)},
    },
    "imagenet128": {
        "description": "The paper's class-conditional 128x128 ImageNet SAGAN (resnet, 1000 classes).",
        "common": {
            "image_size": 128,
            "conv_dim": 64,
            "architecture": "resnet",
            "attention_variant": "sagan",
            "num_classes": 1000,
        },
        "generator": {"z_dim": 128, "attention_resolutions": (64,)},
        "discriminator": {"attention_resolutions": (64,)},
    },
}


def list_presets():
    """Returns `{name: description}` for every preset."""
    return {name: preset["description"] for name, preset in PRESETS.items()}


def preset_config(preset, network, **overrides):
    """Returns the constructor arguments of `network` ("generator" or "discriminator")."""
    if preset not in PRESETS:
        raise ValueError(bad_value("preset", preset, f"one of {sorted(PRESETS)}"))
    config = copy.deepcopy(PRESETS[preset]["common"])
    config.update(PRESETS[preset][network])
    config.update(overrides)
    return config


def build_generator(preset="celeba64", **overrides):
    """Builds a `Generator` from a preset, with any constructor argument overridden.

    Args:
        preset: str. A name from `list_presets()`. Defaults to `"celeba64"`.
        **overrides: `Generator` arguments replacing the preset's.

    Returns:
        A built `Generator`.

    Example:

    >>> g = keras_sagan.build_generator("cifar10_32", num_classes=10)
    """
    generator = Generator(**preset_config(preset, "generator", **overrides))
    generator.build()
    return generator


def build_discriminator(preset="celeba64", **overrides):
    """Builds a `Discriminator` from a preset (see `build_generator`).

    `z_dim` is a generator argument: passing it here is an error (`build_sagan` routes it).
    """
    if "z_dim" in overrides:
        raise ValueError(
            bad_value(
                "z_dim", overrides["z_dim"], "left out: the discriminator has no noise input (a generator argument)"
            )
        )
    discriminator = Discriminator(**preset_config(preset, "discriminator", **overrides))
    discriminator.build()
    return discriminator
