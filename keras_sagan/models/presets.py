"""Named model configurations (the registry of preset names) and the builders that read them.

A registered name is an architecture (constructor arguments: `build_generator(name)` gives random
weights), a preset with weights (`Generator.from_preset(name)`), or both. Which folder or hub
handle a name's weights are in is here; the folder's format is `keras_sagan.preset_format`.
"""

import copy
import os

from keras_sagan import hubs
from keras_sagan.errors import bad_value
from keras_sagan.models.discriminator import Discriminator
from keras_sagan.models.generator import Generator

SHIPPED_PRESETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "shipped_presets")
"""`keras_sagan/shipped_presets/`: the preset folders that ship inside the package (setup.py's package_data)."""

# Presets are plain data: a description, and the architecture (shared arguments and per-network
# extras: "common", "generator", "discriminator"), or "weights", or both:
# - "weights": where the preset folder is: a folder name inside SHIPPED_PRESETS_DIR (weights of
#   10 MB or less may ship in the repository), an absolute folder path, or a hub handle
#   ("hf://owner/model", "kaggle://owner/model/keras/variant"). Without "common", the
#   architecture is the folder's config.json.
# - For a hub handle, optional "architecture", "dataset" and "scores" say what list_presets()
#   reports without downloading; a local folder's own files are read instead.
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
    "fashion_mnist32": {
        "description": "celeba64's networks at 32x32, 1 channel, trained on Fashion-MNIST (3,500 steps; EMA "
        "generator with standing BatchNorm statistics, and the discriminator). Its certificate is in metadata.json.",
        "weights": "fashion_mnist32",
    },
}


def _preset_error(message):
    from keras_sagan.preset_format import PresetError  # Not at the top: preset_format imports the models.

    return PresetError(message)


def weights_location(name):
    """Where the weights of the registered `name` are: a folder path, a hub handle, or None (an architecture)."""
    weights = PRESETS[name].get("weights")
    if weights is None or hubs.is_handle(weights) or os.path.isabs(weights):
        return weights
    return os.path.join(SHIPPED_PRESETS_DIR, weights)


def _accepted():
    weighted = sorted(n for n in PRESETS if "weights" in PRESETS[n])
    architectures = sorted(n for n in PRESETS if "weights" not in PRESETS[n])
    return (
        f"a registered name (with weights: {weighted}; architectures only: {architectures}), "
        "a preset folder, hf://OWNER/MODEL or kaggle://OWNER/MODEL/keras/VARIANT"
    )


def find_preset(preset):
    """The local folder of `preset`: a registered name, a folder, or a hub handle (downloaded or from the cache).

    A registered name wins over a folder of the same name in the working directory (as in keras-hub).
    """
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)
    if not isinstance(preset, str):
        raise _preset_error(bad_value("preset", preset, _accepted()))
    if preset in PRESETS:
        location = weights_location(preset)
        if location is None:
            raise _preset_error(
                f"preset {preset!r} is an architecture without weights: keras_sagan.build_generator({preset!r}) "
                "builds it with random weights (from_preset(..., load_weights=False) too)"
            )
        preset = location
    if hubs.is_handle(preset):
        return hubs.download(preset)
    if os.path.isdir(preset):
        return preset
    raise _preset_error(bad_value("preset", preset, _accepted()))


def load_preset(preset, network="generator", load_weights=True):
    """`network` ("generator", "training_generator" or "discriminator") of any preset (see `find_preset`).

    `load_weights=False` gives the architecture with random weights; for a registered architecture
    without weights that is `build_generator` / `build_discriminator`.
    """
    from keras_sagan import preset_format

    if not load_weights and isinstance(preset, str) and preset in PRESETS and "common" in PRESETS[preset]:
        return (build_discriminator if network == "discriminator" else build_generator)(preset)
    return preset_format.load_network(find_preset(preset), network, load_weights=load_weights)


def load_preset_networks(preset, load_weights=True):
    """`{"generator", "ema_generator", "discriminator"}` of a preset that holds a discriminator (`SAGAN.from_preset`).

    `generator` is the trained generator; `ema_generator` (frozen) is the preset's EMA generator, or None.
    """
    from keras_sagan import preset_format

    if not load_weights and isinstance(preset, str) and "common" in PRESETS.get(preset, {}):
        return {
            "generator": build_generator(preset),
            "ema_generator": None,
            "discriminator": build_discriminator(preset),
        }
    folder = find_preset(preset)
    held = preset_format.read_metadata(folder).get("networks", [])
    if "discriminator" not in held:
        raise _preset_error(
            f"preset {folder} holds no discriminator (it holds: {', '.join(held)}): a SAGAN needs one; "
            "Generator.from_preset loads its generator"
        )
    networks = {
        "ema_generator": None,
        "discriminator": preset_format.load_network(folder, "discriminator", load_weights),
    }
    if "training_generator" in held:
        networks["generator"] = preset_format.load_network(folder, "training_generator", load_weights)
        networks["ema_generator"] = preset_format.load_network(folder, "generator", load_weights)
        networks["ema_generator"].trainable = False
    else:
        networks["generator"] = preset_format.load_network(folder, "generator", load_weights)
    return networks


def list_presets():
    """What every registered name is.

    Returns:
        `{name: {"description", "architecture", "weights", "dataset", "scores"}}`: `architecture` is
        one line (the generator's); `weights` is None for an architecture without weights, else the
        preset folder inside the package or the hub handle; `dataset` and `scores` (the quality
        certificate's `scores`) come from the preset's `metadata.json` (for a hub handle, from the
        registry entry), None when unknown.

    Example:

    >>> keras_sagan.list_presets()["celeba64"]["weights"] is None
    True
    """
    from keras_sagan import preset_format
    from keras_sagan.preset_card import describe_architecture

    listed = {}
    for name, entry in PRESETS.items():
        location = weights_location(name)
        info = {"description": entry["description"], "architecture": entry.get("architecture"), "weights": location}
        info.update(dataset=entry.get("dataset"), scores=entry.get("scores"))
        if location is not None and not hubs.is_handle(location):
            summary = preset_format.summary(location)
            info.update({key: summary[key] for key in ("architecture", "dataset", "scores")})
        elif "common" in entry:
            info["architecture"] = describe_architecture(preset_config(name, "generator"))
        listed[name] = info
    return listed


def preset_config(preset, network, **overrides):
    """Returns the constructor arguments of `network` ("generator" or "discriminator").

    A preset registered with weights and no architecture arguments reads them from its folder's
    config (downloading a hub handle when not cached).
    """
    if preset not in PRESETS:
        raise ValueError(bad_value("preset", preset, f"one of {sorted(PRESETS)}"))
    if "common" not in PRESETS[preset]:
        from keras_sagan import preset_format

        stored = preset_format.read_config(find_preset(preset), network)
        config = {k: v for k, v in stored.items() if k not in ("name", "trainable", "dtype")}
    else:
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
