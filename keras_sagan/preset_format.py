"""The preset folder: keras-hub's layout, written by `save_preset` and read back, safely, by `load_network`.

A preset is a folder (keras-hub's file names, so its tools and the hubs' viewers know it):

- `config.json`: the generator, as `keras.saving.serialize_keras_object` writes it;
- `model.weights.h5`: the generator to sample from (the EMA generator when the run had one);
- `training_generator.weights.h5` (optional): the trained generator's own weights, when
  `model.weights.h5` holds the EMA ones, for fine-tuning;
- `discriminator.json` + `discriminator.weights.h5` (optional): the discriminator, for fine-tuning;
- `metadata.json`: the Keras and keras_sagan versions, the preset format, the parameter count, the
  date, which networks are present, and whatever the writer added (the dataset, the quality
  certificate, the sampling settings);
- `README.md`: the model card, written from the metadata.

Reading is safe:
- a config may name only keras_sagan's own class for its file (and Keras dtype policies); it is
  deserialized with Keras' `safe_mode=True`;
- a weights file is compared with the layout the config builds (every variable's path and
  shape) before anything is assigned, and a mismatch names the first layer;
- a preset of a newer format is refused with one line naming both keras_sagan versions.

Which preset a name or a hub handle means is `keras_sagan.models.presets` (the registry).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile

import h5py
import keras

from keras_sagan.atomic_file import atomic_directory
from keras_sagan.checkpoint.names import nonfinite_variables
from keras_sagan.errors import UsageError, bad_value, one_line
from keras_sagan.models.discriminator import Discriminator
from keras_sagan.models.generator import Generator
from keras_sagan.preset_card import describe_architecture, model_card

FORMAT_VERSION = 1
"""The preset format this keras_sagan writes and the newest it reads (`metadata.json`'s `preset_format`)."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
TRAINING_GENERATOR_WEIGHTS_FILE = "training_generator.weights.h5"
DISCRIMINATOR_CONFIG_FILE = "discriminator.json"
DISCRIMINATOR_WEIGHTS_FILE = "discriminator.weights.h5"
METADATA_FILE = "metadata.json"
CARD_FILE = "README.md"

# network -> (config file, weights file, class). "generator" is the one to sample from.
NETWORKS = {
    "generator": (CONFIG_FILE, WEIGHTS_FILE, Generator),
    "training_generator": (CONFIG_FILE, TRAINING_GENERATOR_WEIGHTS_FILE, Generator),
    "discriminator": (DISCRIMINATOR_CONFIG_FILE, DISCRIMINATOR_WEIGHTS_FILE, Discriminator),
}
# Keys save_preset writes itself; metadata given by the caller cannot replace them.
RESERVED_METADATA = (
    "keras_version",
    "keras_sagan_version",
    "preset_format",
    "parameter_count",
    "date_saved",
    "networks",
    "ema",
)
# The only classes a config may name besides the network's own: Keras' dtype policies.
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")
_IDENTITY_KEYS = ("name", "trainable", "dtype")


class PresetError(UsageError):
    """A preset that cannot be written or read (one line)."""


# -- writing --------------------------------------------------------------------------------------


def save_preset(preset_dir, generator, ema_generator=None, discriminator=None, metadata=None) -> str:
    """Writes a preset folder (see the module docstring); returns its path.

    The folder is written beside `preset_dir` and renamed into place, so a failed save leaves
    nothing; an existing non-empty `preset_dir` is never overwritten.

    Args:
        preset_dir: str or PathLike. The folder to create.
        generator: `Generator`. The trained generator.
        ema_generator: `Generator` or None. Its EMA copy; when given, it is the one in
            `model.weights.h5` (the one to sample from) and `generator` goes to
            `training_generator.weights.h5`.
        discriminator: `Discriminator` or None. Saved for fine-tuning when given.
        metadata: dict or None. JSON-serialisable entries added to `metadata.json` and shown in the
            model card and by `list_presets()` / `keras-sagan info`. Conventional keys:
            `description` (str), `dataset` (str), `certificate` (dict; its `scores` entry, a
            `{name: number}` dict, is what `list_presets()` reports), `sampling` (dict: the
            sampling settings), `step` (int: the training step of the weights).

    Returns:
        The absolute path of the preset folder.

    Example:

    >>> keras_sagan.preset_format.save_preset("presets/mine", gan.generator, gan.ema_generator,
    ...                                       gan.discriminator, metadata={"dataset": "Fashion-MNIST"})
    """
    metadata = dict(metadata or {})
    reserved = sorted(set(metadata) & set(RESERVED_METADATA))
    if reserved:
        raise PresetError(bad_value("metadata", reserved, f"without the keys save_preset writes: {RESERVED_METADATA}"))
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise PresetError(f"`metadata` must be JSON-serialisable; received: {one_line(err)}") from None
    _check_network("generator", generator, Generator)
    if ema_generator is not None:
        _check_network("ema_generator", ema_generator, Generator)
        if comparable_config(ema_generator.get_config()) != comparable_config(generator.get_config()):
            raise PresetError("`ema_generator` must have the generator's config; received: another architecture")
    if discriminator is not None:
        _check_network("discriminator", discriminator, Discriminator)
    preset_dir = os.path.abspath(os.fspath(preset_dir))
    if os.path.isfile(preset_dir) or (os.path.isdir(preset_dir) and os.listdir(preset_dir)):
        raise PresetError(f"{preset_dir} already exists and is not an empty folder; refusing to overwrite it")

    sampling = ema_generator if ema_generator is not None else generator
    files = {WEIGHTS_FILE: sampling}
    networks = ["generator"]
    if ema_generator is not None:
        files[TRAINING_GENERATOR_WEIGHTS_FILE] = generator
        networks.append("training_generator")
    if discriminator is not None:
        files[DISCRIMINATOR_WEIGHTS_FILE] = discriminator
        networks.append("discriminator")
    full = {
        "keras_version": keras.version(),
        "keras_sagan_version": _version(),
        "preset_format": FORMAT_VERSION,
        "parameter_count": int(sampling.count_params()),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
        "networks": networks,
        "ema": ema_generator is not None,
        **metadata,
    }
    parent = os.path.dirname(preset_dir)
    os.makedirs(parent, exist_ok=True)
    try:
        with atomic_directory(preset_dir) as tmp:
            serialize = keras.saving.serialize_keras_object
            # `trainable` is the instance's state, not the network's: a preset loads trainable (an EMA copy is frozen).
            config = serialize(generator)
            config["config"]["trainable"] = True
            _write_json(os.path.join(tmp, CONFIG_FILE), config)
            if discriminator is not None:
                _write_json(os.path.join(tmp, DISCRIMINATOR_CONFIG_FILE), serialize(discriminator))
            for name, network in files.items():
                network.save_weights(os.path.join(tmp, name))
            _write_json(os.path.join(tmp, METADATA_FILE), full)
            with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
                f.write(model_card(full, sampling.get_config(), os.path.basename(preset_dir)))
    except OSError as err:
        raise PresetError(f"cannot write the preset {preset_dir}: {one_line(err)}") from None
    return preset_dir


def _check_network(name, network, cls):
    if not isinstance(network, cls):
        raise PresetError(bad_value(name, type(network).__name__, f"a keras_sagan {cls.__name__}"))
    if not network.built:
        network.build()
    bad = nonfinite_variables(network.weights)
    if bad:
        raise PresetError(f"`{name}` has non-finite weights (first {bad[0]}): refusing to save a diverged network")


def _write_json(path, content):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, sort_keys=True)
        f.write("\n")


def _version():
    from keras_sagan import __version__

    return __version__


def comparable_config(config: dict) -> dict:
    """A network config without the keys that name an instance (`name`, `trainable`, `dtype`), as on disk."""
    config = json.loads(json.dumps(config))  # Tuples become lists, as in a file.
    return {k: v for k, v in config.items() if k not in _IDENTITY_KEYS}


# -- reading --------------------------------------------------------------------------------------


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise PresetError(f"cannot read {path}: {one_line(err)}") from None


def _require(preset_dir, filename):
    path = os.path.join(preset_dir, filename)
    if not os.path.isfile(path):
        present = sorted(os.listdir(preset_dir)) if os.path.isdir(preset_dir) else []
        raise PresetError(f"preset {preset_dir} has no {filename} (it holds: {', '.join(present) or 'nothing'})")
    return path


def is_preset_dir(path: str) -> bool:
    """Whether the folder `path` is meant as a preset (it has `metadata.json` or `model.weights.h5`)."""
    return any(os.path.isfile(os.path.join(path, name)) for name in (METADATA_FILE, WEIGHTS_FILE))


def read_metadata(preset_dir: str) -> dict:
    """`metadata.json` of a preset folder, refusing one written in a newer preset format."""
    metadata = _read_json(_require(preset_dir, METADATA_FILE))
    fmt = metadata.get("preset_format") if isinstance(metadata, dict) else None
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise PresetError(f"{os.path.join(preset_dir, METADATA_FILE)} has no preset_format: not a keras_sagan preset")
    if fmt > FORMAT_VERSION:
        raise PresetError(
            f"preset {preset_dir} was written by keras_sagan {metadata.get('keras_sagan_version', '?')} "
            f"(preset format {fmt}); this keras_sagan {_version()} reads format {FORMAT_VERSION} and older: "
            "pip install -U keras_sagan"
        )
    return metadata


def read_config(preset_dir: str, network: str = "generator") -> dict:
    """The checked constructor arguments of `network` in a preset (its serialized `config`)."""
    return _checked_payload(preset_dir, network)["config"]


def _network_files(preset_dir, network, metadata):
    if network not in NETWORKS:
        raise PresetError(bad_value("network", network, f"one of {tuple(NETWORKS)}"))
    if network not in metadata.get("networks", ["generator"]):
        held = ", ".join(metadata.get("networks", [])) or "nothing"
        raise PresetError(f"preset {preset_dir} holds no {network.replace('_', ' ')} (it holds: {held})")
    config_file, weights_file, cls = NETWORKS[network]
    return _require(preset_dir, config_file), os.path.join(preset_dir, weights_file), cls


def _checked_payload(preset_dir, network):
    config_path, _, cls = _network_files(preset_dir, network, read_metadata(preset_dir))
    payload = _read_json(config_path)
    expected = f"keras_sagan>{cls.__name__}"
    named = payload.get("registered_name") if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or named != expected
        or payload.get("class_name") != cls.__name__
        or payload.get("module") != cls.__module__
        or not isinstance(payload.get("config"), dict)
    ):
        shown = named or (payload.get("class_name") if isinstance(payload, dict) else type(payload).__name__)
        raise PresetError(
            f"{config_path} names the class {shown!r}; a keras_sagan preset's {os.path.basename(config_path)} "
            f"may name only {expected}: refusing to deserialize it"
        )
    foreign = _foreign_class(payload["config"])
    if foreign is not None:
        raise PresetError(
            f"{config_path} names the class {foreign!r} inside its config; only Keras dtype policies may appear "
            "there: refusing to deserialize it"
        )
    return payload


def _foreign_class(value):
    """The first class named anywhere in `value` other than a Keras dtype policy, or None."""
    if isinstance(value, dict):
        if {"class_name", "registered_name", "module"} & set(value):
            policy = (
                value.get("module") == "keras"
                and value.get("class_name") in _DTYPE_POLICIES
                and value.get("registered_name") is None
            )
            if not policy:
                return value.get("registered_name") or f"{value.get('module')}.{value.get('class_name')}"
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _foreign_class(item)
        if found:
            return found
    return None


def load_network(preset_dir: str, network: str = "generator", load_weights: bool = True):
    """Builds `network` ("generator", "training_generator" or "discriminator") of a preset folder.

    The config is checked (only keras_sagan's class) and deserialized with Keras' `safe_mode`;
    with `load_weights`, the weights file is checked against the built network before it loads.
    """
    payload = _checked_payload(preset_dir, network)
    _, weights_path, cls = _network_files(preset_dir, network, read_metadata(preset_dir))
    config_path = os.path.join(preset_dir, NETWORKS[network][0])
    try:
        model = keras.saving.deserialize_keras_object(
            {key: payload[key] for key in ("module", "class_name", "config", "registered_name")}, safe_mode=True
        )
        model.build()
    except (TypeError, ValueError) as err:
        raise PresetError(f"bad {cls.__name__} config in {config_path}: {one_line(err)}") from None
    if not isinstance(model, cls):  # registered_name was checked; a registry replaced at runtime would land here.
        raise PresetError(f"{config_path} built a {type(model).__name__}, not a keras_sagan {cls.__name__}")
    if load_weights:
        _require(preset_dir, os.path.basename(weights_path))
        check_weights(model, weights_path, config_path)
        model.load_weights(weights_path)
    return model


def weight_layout(path: str) -> dict[str, tuple]:
    """`{variable path: shape}` of a Keras `.weights.h5` file, in the file's order."""
    layout = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: layout.update({name: obj.shape}) if isinstance(obj, h5py.Dataset) else None)
    except OSError as err:
        raise PresetError(f"{path} is not a Keras weights file (HDF5): {one_line(err)}") from None
    return layout


def check_weights(model, weights_path: str, config_path: str) -> None:
    """Raises a one-line `PresetError` naming the first layer where `weights_path` does not fit `model`.

    The expected layout is what Keras writes for `model` (saved to a temporary file); nothing is
    assigned to `model` here.
    """
    with tempfile.TemporaryDirectory() as tmp:
        expected_path = os.path.join(tmp, "expected.weights.h5")
        model.save_weights(expected_path)
        expected = weight_layout(expected_path)
    found = weight_layout(weights_path)
    for key in list(expected) + [k for k in found if k not in expected]:
        if expected.get(key) == found.get(key):
            continue
        layer = key.split("/vars/")[0]
        if key not in found:
            detail = f"{key} {tuple(expected[key])} is missing from the file"
        elif key not in expected:
            detail = f"{key} {tuple(found[key])} is in the file but not in the network"
        else:
            detail = f"{key} has shape {tuple(found[key])} in the file, {tuple(expected[key])} in the network"
        raise PresetError(
            f"{weights_path} does not hold weights of the network {config_path} describes (another architecture?): "
            f"first mismatch at layer {layer!r}: {detail}"
        )


def summary(preset_dir: str) -> dict:
    """`{"architecture", "dataset", "scores", "networks", "ema", "metadata"}` of a preset folder."""
    metadata = read_metadata(preset_dir)
    certificate = metadata.get("certificate")
    scores = certificate.get("scores") if isinstance(certificate, dict) else None
    return {
        "architecture": describe_architecture(read_config(preset_dir)),
        "dataset": metadata.get("dataset"),
        "scores": scores,
        "networks": metadata.get("networks"),
        "ema": metadata.get("ema"),
        "metadata": metadata,
    }
