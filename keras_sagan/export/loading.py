"""Loading any generator: `load_generator(path)` for every kind of file keras_sagan writes.

`path` may be:

- a SavedModel version directory (`saved_model.pb` inside), as `export_generator` writes;
- a TF Serving base directory: its latest numbered version is used;
- a training run directory (or its `checkpoints/` folder): the generator is built from
  `config.json` and its weights restored from the latest checkpoint, the EMA weights when the
  checkpoint has them;
- a `.keras` file holding a `Generator` (`generator.save("g.keras")`);
- a preset (`keras_sagan.preset_format`): a registered name with weights, a preset folder, `hf://owner/model`
  or `kaggle://owner/model/keras/variant`; its `model.weights.h5`, the EMA weights when it has them.

Each gives a `LoadedGenerator`: `z_dim`, `num_classes`, `image_size`, `description`, and
`__call__(z, labels=None)` returning images in [-1, 1]. `sample`, `evaluate`, `info` and the
callbacks all go through it. Failures are one-line `ModelLoadError`s.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import tensorflow as tf

from keras_sagan.checkpoint.names import CHECKPOINT_EMA_GENERATOR, CHECKPOINT_GENERATOR, nonfinite_variables
from keras_sagan.checkpoint.reading import OpenedCheckpoint, checkpoint_step, locate_run, open_newest
from keras_sagan.errors import UsageError, one_line
from keras_sagan.export import saved_model as serving  # The layout it reads; the graph `sample` runs.
from keras_sagan.models.generator import Generator
from keras_sagan.run_directory import CONFIG_FILENAME, missing_path_reason, read_json

KINDS = ("saved_model", "run", "keras", "preset")


class ModelLoadError(UsageError):
    """A model path that does not hold a loadable generator (one line)."""


def is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve(path: str | os.PathLike) -> tuple[str, str]:
    """`(kind, path)` of a model path: kind is one of `KINDS`; a base directory resolves to its latest version
    (a preset name or hub handle to itself: nothing is downloaded here)."""
    from keras_sagan import hubs, preset_format
    from keras_sagan.models.presets import PRESETS, find_preset

    path = os.fspath(path)
    if path in PRESETS or hubs.is_handle(path):
        return "preset", path
    if not os.path.exists(path):
        if os.sep not in path and "." not in path:  # A bare word: meant as a preset name.
            find_preset(path)  # The one-line error listing the registered names.
        reason = missing_path_reason(path)
        raise ModelLoadError(f"no such model path: {path}" if reason.startswith("no such") else f"{path}: {reason}")
    if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
        raise ModelLoadError(f"cannot read model path {path}: permission denied")
    if os.path.isfile(path):
        if path.endswith(".keras"):
            return "keras", path
        raise ModelLoadError(
            f"model path {path} is a file but not a .keras file; "
            "accepted: a SavedModel directory, a TF Serving base directory, a run directory, a preset or a .keras file"
        )
    if is_saved_model(path):
        return "saved_model", path
    if preset_format.is_preset_dir(path):  # Before the run-directory check: a preset folder also has a config.json.
        return "preset", path
    versions = [v for v in serving.list_versions(path) if is_saved_model(os.path.join(path, str(v)))]
    if versions:
        return "saved_model", os.path.join(path, str(versions[-1]))
    try:
        locate_run(path)
    except UsageError as err:
        raise ModelLoadError(
            f"{path} is neither a SavedModel (saved_model.pb), a base directory with numbered versions, "
            f"nor a usable run directory ({err})"
        ) from None
    return "run", path


# -- SavedModels ----------------------------------------------------------------------------------


def read_signatures(version_dir: str) -> dict:
    """`{name: (method, {input: (dtype, shape)}, {output: (dtype, shape)})}` from `saved_model.pb`."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
    except DecodeError as err:
        raise ModelLoadError(f"corrupt SavedModel at {version_dir}: cannot parse saved_model.pb ({err})") from None
    if not proto.meta_graphs:
        raise ModelLoadError(f"corrupt SavedModel at {version_dir}: no MetaGraph in saved_model.pb")

    def describe(tensors):
        out = {}
        for key, info in sorted(tensors.items()):
            dtype = tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid"
            if info.tensor_shape.unknown_rank:
                shape = "unknown"
            else:
                shape = [None if d.size < 0 else d.size for d in info.tensor_shape.dim]
            out[key] = (dtype, shape)
        return out

    signatures = {}
    for name, sig in sorted(proto.meta_graphs[0].signature_def.items()):
        if not name.startswith("__"):
            signatures[name] = (sig.method_name, describe(sig.inputs), describe(sig.outputs))
    return signatures


def load_saved_model(version_dir: str):
    """`tf.saved_model.load(version_dir)`, with a damaged SavedModel reported in one line."""
    read_signatures(version_dir)  # Fails fast, in one line, on a corrupt saved_model.pb.
    try:
        return tf.saved_model.load(version_dir)
    except (tf.errors.OpError, OSError, ValueError, KeyError, AssertionError) as err:
        raise ModelLoadError(f"cannot load SavedModel at {version_dir}: {one_line(err)}") from None


def read_marker(base_path: str) -> dict | None:
    """The export marker (`serving.MARKER_FILENAME`) of a TF Serving base path, or None."""
    marker = os.path.join(base_path, serving.MARKER_FILENAME)
    if not os.path.isfile(marker):
        return None
    return read_json(marker)


def read_export_step(version_dir: str) -> int | None:
    """The training step recorded in an export version (`serving.EXPORT_RECORD`), or None when unknown."""
    try:
        with open(os.path.join(version_dir, serving.EXPORT_RECORD), encoding="utf-8") as f:
            step = json.load(f).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def check_finite_generator(generator, what: str) -> None:
    """Raises a one-line `ModelLoadError` when any weight of `generator` is NaN or infinite."""
    bad = nonfinite_variables(generator.weights)
    if bad:
        raise ModelLoadError(
            f"{what} has non-finite weights ({len(bad)} of {len(generator.weights)} variables hold NaN or inf, "
            f"first {bad[0]}): the training diverged; use an earlier checkpoint"
        )


def check_finite_images(images, what: str) -> None:
    """Raises a one-line `ModelLoadError` when generated `images` hold NaN or inf (a diverged model)."""
    array = np.asarray(images)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        count = int(np.sum(~np.isfinite(array)))
        raise ModelLoadError(
            f"{what} generated non-finite images ({count} of {array.size} values are NaN or inf): "
            "its training diverged; use an earlier checkpoint"
        )


# -- runs -----------------------------------------------------------------------------------------


def restore_network(checkpoint: OpenedCheckpoint, key: str, network, mismatch: str) -> None:
    """Restores the checkpoint object `key` into `network` (either format), checking counts and shapes first."""
    if checkpoint.children[key] != len(network.variables):
        raise ModelLoadError(
            f"{mismatch}: it holds {checkpoint.children[key]} {key} variables, the config builds "
            f"{len(network.variables)}"
        )
    checkpoint.restore({key: network}, mismatch, error=ModelLoadError)


def build_network(cls, config: dict, config_path: str):
    try:
        network = cls.from_config(config)
        network.build()
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"bad {cls.__name__.lower()} config in {config_path}: {one_line(err)}") from None
    return network


def load_run_generator(directory: str, object_name: str | None = None) -> tuple[Generator, str, str]:
    """`(generator, checkpoint_prefix, object_name)` from a run directory's latest checkpoint.

    The generator is built from `config.json`; the checkpoint's `ema_generator` weights are
    restored when present, else its `generator` weights. `object_name` (`CHECKPOINT_GENERATOR`
    or `CHECKPOINT_EMA_GENERATOR`) asks for one of them.
    """
    run = locate_run(directory)
    config = run.read_config()

    def restore(checkpoint: OpenedCheckpoint) -> tuple[Generator, str]:
        children = checkpoint.children
        key = CHECKPOINT_EMA_GENERATOR if CHECKPOINT_EMA_GENERATOR in children else CHECKPOINT_GENERATOR
        key = object_name or key
        if key not in children:
            raise ModelLoadError(f"checkpoint {checkpoint.path} holds no generator (objects: {sorted(children)})")
        generator = build_network(Generator, config["generator"], run.config_path)
        mismatch = f"checkpoint {checkpoint.path} does not match the generator described by {CONFIG_FILENAME}"
        restore_network(checkpoint, key, generator, mismatch)
        return generator, key

    # The newest readable one; one rotated away meanwhile (a run training now) falls back to the next.
    checkpoint, restored = open_newest(run, warn=lambda line: print(line, file=sys.stderr, flush=True), use=restore)
    if checkpoint is None:  # Every one rotated away while we looked.
        raise ModelLoadError(f"no checkpoint found in {run.checkpoints_dir}")
    generator, key = restored
    check_finite_generator(generator, f"checkpoint {checkpoint.path} ({key})")
    return generator, checkpoint.path, key


def resolve_generator(generator_or_path) -> Generator:
    """A Keras `Generator` from a `Generator`, a `SAGAN` (its sampling generator), a run dir or a `.keras` file."""
    obj = generator_or_path
    if isinstance(obj, Generator):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        obj = load_generator(obj)
    if isinstance(obj, LoadedGenerator):
        if obj.keras_generator is None:
            raise ModelLoadError(f"{obj.path} is a SavedModel; a run directory or a .keras file is needed here")
        return obj.keras_generator
    sampling = getattr(obj, "sampling_generator", None)
    if callable(sampling) and isinstance(sampling(), Generator):
        return sampling()
    raise TypeError(
        "`generator_or_checkpoint` must be a Generator, a SAGAN, a run directory or a .keras file; "
        f"received: generator_or_checkpoint of type {type(obj).__name__}"
    )


# -- the common interface -------------------------------------------------------------------------


class LoadedGenerator:
    """A generator behind one interface, whatever it was loaded from.

    Attributes:
        kind: str. One of `KINDS`.
        path: str. The resolved path (a SavedModel's version directory).
        description: str. A one-line account of what was loaded (for logs and JSON reports).
        z_dim, num_classes, image_size: the generator's noise size, class count (None when
            unconditional) and image side.
        keras_generator: the Keras `Generator`, or None for a SavedModel.
        step: int or None. The training step of the weights, where known (a run's checkpoint, a preset's metadata).
        metadata, folder: a preset's `metadata.json` (certificate, sampling settings) and local folder, else None.
    """

    step = None
    metadata = folder = None
    weights = None  # A run's checkpoint object the weights came from (`ema_generator` or `generator`).

    def __init__(self, kind, path, description, z_dim, num_classes, image_size, keras_generator=None, signatures=None):
        self.kind = kind
        self.path = path
        self.description = description
        self.z_dim = int(z_dim)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.image_size = int(image_size)
        self.keras_generator = keras_generator
        self._signatures = signatures  # A SavedModel's; for a Keras generator, built by `sample`.

    def __repr__(self) -> str:
        return f"<LoadedGenerator {self.description}>"

    def __call__(self, z, labels=None, training=False):
        """Images in [-1, 1] `(batch, H, W, 3)` for `z` (and `labels`), in inference mode. To sample with the
        package's label rule when no labels are given, call `keras_sagan.models.sampling.sample(this, z)`.

        `training` exists so that this object can stand in for a Keras generator; it must be False.
        """
        if training:
            raise ValueError("`training` must be False; received: training=True (a loaded generator only infers)")
        if self.keras_generator is not None:
            return self.keras_generator(z, labels, training=False)
        inputs = {"z": tf.convert_to_tensor(z, tf.float32)}  # A SavedModel: its serving_default signature.
        if self.num_classes is not None:  # Its signature takes `labels`; an unconditional model's does not.
            inputs["labels"] = tf.convert_to_tensor(labels, tf.int32)
        return self._signatures["serving_default"](**inputs)["images"]

    def sample(self, num_images: int, seed: int = 0, truncation: float = 0.0, labels=None) -> dict:
        """The `sample` signature's outputs (`images`, `images_uint8`) for `num_images` seeded images.

        Without `labels`, a conditional model's image `i` gets class `(seed + i) mod num_classes`
        (`keras_sagan.models.sampling.class_cycle`).
        """
        labels = list(labels or [])
        if labels and self.num_classes is None:
            raise ModelLoadError(f"{self.path} is an unconditional model; labels do not apply")
        inputs = {
            "num_images": tf.constant(num_images, tf.int32),
            "seed": tf.constant(seed, tf.int64),
            "truncation": tf.constant(truncation, tf.float32),
        }
        if self.num_classes is not None:
            inputs["labels"] = tf.constant(labels, tf.int32, shape=[len(labels)])
        if self._signatures is None:  # The in-process graph a model server would run.
            module = serving.serving_module(self.keras_generator)
            self._signatures = {"sample": module.sample}
        outputs = self._signatures["sample"](**inputs)
        check_finite_images(outputs["images"], self.description)
        return outputs


def _from_saved_model(version_dir: str) -> LoadedGenerator:
    loaded = load_saved_model(version_dir)
    missing = [name for name in ("serving_default", "sample") if name not in loaded.signatures]
    if missing:
        raise ModelLoadError(
            f"SavedModel {version_dir} has no {missing[0]!r} signature (it has {sorted(loaded.signatures)}): "
            "not a keras_sagan export"
        )
    signature = loaded.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    if "z" not in inputs or "images" not in signature.structured_outputs:
        raise ModelLoadError(f"SavedModel {version_dir}: serving_default does not take `z` and return `images`")
    num_classes = None
    if "labels" in inputs:
        # The SavedModel does not hold the class count; the export's marker file does.
        base = os.path.dirname(os.path.abspath(version_dir))
        try:
            num_classes = int((read_marker(base) or {})["generator"]["num_classes"])
        except (UsageError, KeyError, TypeError, ValueError):
            raise ModelLoadError(
                f"{version_dir} is a conditional SavedModel and its number of classes is unknown: "
                f"{os.path.join(base, serving.MARKER_FILENAME)} is missing or has no generator num_classes"
            ) from None
    z_dim = int(inputs["z"].shape[-1])
    image_size = signature.structured_outputs["images"].shape[1]
    if image_size is None:  # Not in the signature: generate one image to find out.
        feed = {"z": tf.zeros((1, z_dim), tf.float32)}
        if num_classes is not None:
            feed["labels"] = tf.zeros((1,), tf.int32)
        image_size = int(signature(**feed)["images"].shape[1])
    result = LoadedGenerator(
        "saved_model",
        version_dir,
        f"saved_model {os.path.abspath(version_dir)}",
        z_dim,
        num_classes,
        image_size,
        signatures=loaded.signatures,
    )
    result._loaded = loaded  # Owns the variables the signatures read.
    return result


def _from_keras_generator(kind, path, generator, description) -> LoadedGenerator:
    return LoadedGenerator(
        kind, path, description, generator.z_dim, generator.num_classes, generator.image_size, generator
    )


def _from_preset(preset: str) -> LoadedGenerator:
    from keras_sagan import preset_format
    from keras_sagan.models.presets import find_preset

    folder = find_preset(preset)
    generator = preset_format.load_network(folder, "generator")
    check_finite_generator(generator, f"preset {preset}")
    result = _from_keras_generator("preset", preset, generator, f"preset {preset} ({os.path.abspath(folder)})")
    result.metadata, result.folder = preset_format.read_metadata(folder), folder
    result.step = result.metadata.get("step") if type(result.metadata.get("step")) is int else None  # Not a bool.
    return result


def load_generator(path: str | os.PathLike) -> LoadedGenerator:
    """Loads the generator at `path` (see the module docstring for what `path` may be)."""
    kind, path = resolve(path)
    if kind == "saved_model":
        return _from_saved_model(path)
    if kind == "preset":
        return _from_preset(path)
    if kind == "run":
        generator, prefix, key = load_run_generator(path)
        result = _from_keras_generator("run", path, generator, f"checkpoint {prefix} ({key})")
        result.step = checkpoint_step(prefix)
        result.weights = key
        return result
    import keras

    try:
        model = keras.saving.load_model(path)
    except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"cannot load {path} (not a Keras .keras file?): {one_line(err)}") from None
    if not isinstance(model, Generator):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a keras_sagan Generator")
    check_finite_generator(model, f"keras file {os.path.abspath(path)}")
    return _from_keras_generator("keras", path, model, f"keras file {os.path.abspath(path)}")


def load_generator_variants(path: str | os.PathLike) -> dict[str, LoadedGenerator]:
    """Every sampling generator a model path holds, by name: `{"ema": ..., "live": ...}` for a run with
    EMA weights (the EMA generator first), else `{"generator": ...}`.

    It resolves `path` through `load_generator`, so it accepts whatever that accepts.
    """
    main = load_generator(path)
    if main.weights != CHECKPOINT_EMA_GENERATOR:
        return {"generator": main}
    generator, prefix, key = load_run_generator(main.path, CHECKPOINT_GENERATOR)
    live = _from_keras_generator("run", main.path, generator, f"checkpoint {prefix} ({key})")
    live.step, live.weights = main.step, key
    return {"ema": main, "live": live}
