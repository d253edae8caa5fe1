"""Exports a trained generator as a TF Serving SavedModel.

`export_generator` writes `base_path/<version>/`, the layout TF Serving's
model server watches, with two signatures (method `tensorflow/serving/predict`):

- `serving_default`: inputs `z` float32 `[batch, z_dim]` (and `labels` int32
  `[batch]` for a class-conditional generator); outputs `images` float32
  `[batch, H, W, 3]` in [-1, 1] and `images_uint8` uint8 `[batch, H, W, 3]`,
  `clip(round((images + 1) * 127.5), 0, 255)`.
- `sample`: scalar inputs `num_images` int32 (1 to `MAX_IMAGES`), `seed`
  int64 and `truncation` float32 (and `labels` int32 `[num_images]` for a
  conditional generator, or `[0]` to draw classes uniformly from the seed);
  `z` is drawn inside the graph by `sample_z`. Same outputs.

The exported graph calls the generator with `training=False`: BatchNorm uses
its moving statistics and spectral normalisation uses its stored `u` without
updating it, so the same inputs always give the same images. The SavedModel
loads with plain `tf.saved_model.load`; keras_sagan is not needed to serve it.

A checkpoint directory can be exported too. The training side writes, in its
model directory, `config.json` holding `{"generator": generator.get_config(),
...}` and, in the model directory or its `checkpoints/` subfolder, checkpoints
from `tf.train.CheckpointManager` over `tf.train.Checkpoint(generator=...,
discriminator=..., ema_generator=..., ...)`. `ema_generator` is optional; when
the checkpoint has it, its weights are exported.

No XLA option: on the 2-core CPU this was measured on, `jit_compile=True`
made the exported function slower (64x64 conv_dim 64 generator: 25 vs 19 ms
at batch 1, 182 vs 152 ms at batch 16, 750 vs 579 ms at batch 64; the small
32x32 models too), so the functions run without it.
"""

import json
import os
import shutil
import uuid

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from keras_sagan.models.generator import Generator

MAX_IMAGES = 1024
"""Largest `num_images` the `sample` signature accepts."""

MARKER_FILENAME = "keras_sagan_model.json"
"""Written beside the versions: the generator config every version shares."""

CONFIG_FILENAME = "config.json"
"""Model-directory file holding `{"generator": Generator.get_config()}`."""

# Second halves of the stateless seeds: z and random labels use separate streams.
_Z_STREAM = 0
_LABEL_STREAM = 1

# Config keys that name an instance rather than describe the model.
_IDENTITY_KEYS = ("name", "trainable", "dtype")


class ExportError(ValueError):
    """An export or model load that cannot go ahead (bad path, clash, bad file)."""


# -- z sampling -----------------------------------------------------------


def sample_z(num_images, z_dim: int, seed, truncation) -> tf.Tensor:
    """Draws `(num_images, z_dim)` float32 noise, deterministically from `seed`.

    With `truncation <= 0`, each entry is standard normal. With
    `truncation = t > 0`, each entry is standard normal conditioned on
    `|z| <= t` (the "truncation trick" of Brock et al., BigGAN, 2019; values
    beyond `t` are in effect resampled), drawn exactly by inverse-CDF sampling:
    smaller `t` trades variety for fidelity. The same `(num_images, seed,
    truncation)` always gives the same `z` (stateless random ops).

    Args:
        num_images: int32 scalar tensor.
        z_dim: int. Noise dimension.
        seed: int64 scalar tensor.
        truncation: float32 scalar tensor.

    Returns:
        A float32 tensor of shape `(num_images, z_dim)`.
    """
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(_Z_STREAM, tf.int64)])
    shape = tf.stack([tf.cast(num_images, tf.int32), tf.constant(z_dim, tf.int32)])
    normal = tf.random.stateless_normal(shape, seed, dtype=tf.float32)
    # Inverse CDF in float64: u uniform on [Phi(-t), Phi(t)], z = Phi^-1(u).
    t = tf.maximum(tf.cast(truncation, tf.float64), 1e-6)
    sqrt2 = tf.constant(2.0**0.5, tf.float64)
    low = 0.5 * tf.math.erfc(t / sqrt2)  # Phi(-t)
    high = 0.5 * tf.math.erfc(-t / sqrt2)  # Phi(t)
    uniform = tf.random.stateless_uniform(shape, seed, dtype=tf.float64)
    truncated = tf.math.ndtri(low + uniform * (high - low))
    truncated = tf.cast(tf.clip_by_value(truncated, -t, t), tf.float32)
    return tf.where(truncation > 0, truncated, normal)


def to_uint8(images) -> tf.Tensor:
    """[-1, 1] float images to uint8: `clip(round((x + 1) * 127.5), 0, 255)`."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


# -- the exported module --------------------------------------------------


def _tf_variable(variable):
    value = variable.value  # Outside autocast/stateless scopes: the tf.Variable.
    if not isinstance(value, tf.Variable):
        raise TypeError(f"Expected a TensorFlow-backed variable; received {type(value).__name__} for {variable.path}.")
    return value


class _ServingModule(tf.Module):
    """Holds the generator's variables and the two serving functions."""

    def __init__(self, generator):
        super().__init__(name="keras_sagan_generator")
        # Save the generator's tf.Variables only, not its Keras objects (a
        # plain function attribute is not tracked): the SavedModel then loads
        # without keras_sagan or Keras and its graph holds no Keras layer
        # structure. They must be the raw tf.Variables (`keras.Variable.value`),
        # not the Keras wrappers: with the wrappers, TF1-style loaders (TF
        # Serving's C++ loader, `saved_model_cli run`) leave some variables
        # uninitialised.
        self._call_generator = lambda *args, **kwargs: generator(*args, **kwargs)
        self.generator_variables = [_tf_variable(v) for v in generator.variables]
        self.z_dim = generator.z_dim
        self.num_classes = generator.num_classes
        z_spec = tf.TensorSpec([None, generator.z_dim], tf.float32, name="z")
        labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
        scalar_specs = [
            tf.TensorSpec([], tf.int32, name="num_images"),
            tf.TensorSpec([], tf.int64, name="seed"),
            tf.TensorSpec([], tf.float32, name="truncation"),
        ]
        if generator.num_classes is None:
            self.serving_default = tf.function(self._serve, autograph=False, input_signature=[z_spec])
            self.sample = tf.function(self._sample, autograph=False, input_signature=scalar_specs)
        else:
            self.serving_default = tf.function(
                self._serve_conditional,
                autograph=False,
                input_signature=[z_spec, labels_spec],
            )
            self.sample = tf.function(
                self._sample_conditional,
                autograph=False,
                input_signature=[*scalar_specs, labels_spec],
            )

    def _generate(self, z, labels=None):
        # Shape checks in the graph too: TF Serving feeds tensors without
        # checking them against the signature's shapes.
        z_dim = self.z_dim
        message = f"z must have shape [batch, {z_dim}] (float32)"
        # EnsureShape checks the fed tensor at run time (a signature function
        # does not); the assert gives the message a client sees.
        with tf.control_dependencies(
            [
                tf.debugging.assert_equal(tf.shape(z)[-1], z_dim, message=message),
                tf.debugging.assert_equal(tf.size(z), tf.shape(z)[0] * z_dim, message=message),
            ]
        ):
            z = tf.ensure_shape(z, [None, z_dim])
        if labels is None:
            images = self._call_generator(z, training=False)
        else:
            num_classes = self.num_classes
            checks = [
                tf.debugging.assert_equal(
                    tf.size(labels),
                    tf.shape(z)[0],
                    message="labels must have one entry per row of z (per image)",
                ),
                tf.debugging.assert_non_negative(labels, message=f"labels must be in [0, {num_classes})"),
                tf.debugging.assert_less(labels, num_classes, message=f"labels must be in [0, {num_classes})"),
            ]
            with tf.control_dependencies(checks):
                labels = tf.identity(labels)
            images = self._call_generator(z, labels, training=False)
        images = tf.cast(images, tf.float32)
        return {"images": images, "images_uint8": to_uint8(images)}

    def _serve(self, z):
        return self._generate(z)

    def _serve_conditional(self, z, labels):
        return self._generate(z, labels)

    def _check_num_images(self, num_images):
        message = f"num_images must be in [1, {MAX_IMAGES}] (the cap is {MAX_IMAGES})"
        with tf.control_dependencies(
            [
                tf.debugging.assert_greater_equal(num_images, 1, message=message),
                tf.debugging.assert_less_equal(num_images, MAX_IMAGES, message=message),
            ]
        ):
            return tf.identity(num_images)

    def _sample(self, num_images, seed, truncation):
        num_images = self._check_num_images(num_images)
        return self._generate(sample_z(num_images, self.z_dim, seed, truncation))

    def _sample_conditional(self, num_images, seed, truncation, labels):
        num_images = self._check_num_images(num_images)
        z = sample_z(num_images, self.z_dim, seed, truncation)
        # Empty `labels`: classes drawn uniformly from a seed stream separate
        # from z's.
        random_labels = tf.random.stateless_uniform(
            [num_images],
            tf.stack([tf.cast(seed, tf.int64), tf.constant(_LABEL_STREAM, tf.int64)]),
            minval=0,
            maxval=self.num_classes,
            dtype=tf.int32,
        )
        labels = tf.cond(tf.size(labels) > 0, lambda: labels, lambda: random_labels)
        return self._generate(z, labels)


def serving_module(generator: Generator) -> tf.Module:
    """The `tf.Module` that `export_generator` saves, with `serving_default`
    and `sample` `tf.function`s taking the signatures' inputs (as keywords)
    and returning `{"images", "images_uint8"}`. Calling it in-process runs the
    same graph a model server runs."""
    if not generator.built:
        generator.build()
    return _ServingModule(generator)


# -- resolving what to export ---------------------------------------------


def _comparable_config(config):
    config = json.loads(json.dumps(config))  # tuples -> lists, as on disk
    return {k: v for k, v in config.items() if k not in _IDENTITY_KEYS}


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError(f"Cannot read {path}: {e}") from None


def find_checkpoint(directory: str) -> tuple[str, dict]:
    """Returns `(checkpoint_prefix, generator_config)` for a model directory.

    `directory` may be the model directory (holding `config.json` and either
    the checkpoints or a `checkpoints/` subfolder) or the `checkpoints/`
    folder itself (`config.json` in its parent). The latest checkpoint of
    the `CheckpointManager` is used.
    """
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise ExportError(f"No such checkpoint directory: {directory}")
    prefix = tf.train.latest_checkpoint(directory)
    if prefix is None and os.path.isdir(os.path.join(directory, "checkpoints")):
        prefix = tf.train.latest_checkpoint(os.path.join(directory, "checkpoints"))
    if prefix is None:
        raise ExportError(f"No checkpoint found in {directory} or {os.path.join(directory, 'checkpoints')}")
    for candidate in (directory, os.path.dirname(directory)):
        config_path = os.path.join(candidate, CONFIG_FILENAME)
        if os.path.isfile(config_path):
            break
    else:
        raise ExportError(
            f"No {CONFIG_FILENAME} in {directory} or its parent; the training run must write "
            f'{{"generator": generator.get_config()}} there'
        )
    config = _read_json(config_path)
    if not isinstance(config, dict) or not isinstance(config.get("generator"), dict):
        raise ExportError(f'{config_path} has no "generator" config')
    return prefix, config["generator"]


def checkpoint_children(prefix: str) -> dict[str, int]:
    """`{name: number of variables reachable from it}` for a checkpoint's top-level objects."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError, DecodeError) as e:
        raise ExportError(f"Cannot read checkpoint {prefix}: {e}") from None

    def count_variables(node_id):
        # Walk the whole object graph under the node: a variable can be stored
        # under another object's path (an optimizer's, say) and still belong here.
        seen, stack = set(), [node_id]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(child.node_id for child in graph.nodes[node].children)
        return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)

    return {child.local_name: count_variables(child.node_id) for child in graph.nodes[0].children}


def load_generator_from_checkpoint(directory: str) -> tuple[Generator, bool]:
    """Builds the generator from `config.json` and restores checkpoint weights.

    The EMA weights (`ema_generator`) are restored when the checkpoint has
    them, else the raw `generator` weights.

    Returns:
        `(generator, used_ema)`.
    """
    prefix, config = find_checkpoint(directory)
    try:
        generator = Generator.from_config(config)
        generator.build()
    except (TypeError, ValueError) as e:
        raise ExportError(f"Bad generator config in {CONFIG_FILENAME} for {directory}: {e}") from None
    children = checkpoint_children(prefix)
    key = "ema_generator" if "ema_generator" in children else "generator"
    if key not in children:
        raise ExportError(f"Checkpoint {prefix} holds no generator (objects: {sorted(children)})")
    mismatch = f"Checkpoint {prefix} does not match the generator described by {CONFIG_FILENAME}"
    if children[key] != len(generator.variables):
        raise ExportError(
            f"{mismatch}: it holds {children[key]} {key} variables, the config builds {len(generator.variables)}"
        )
    try:
        status = tf.train.Checkpoint(**{key: generator}).read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportError(f"{mismatch}: {e}") from None
    used_ema = key == "ema_generator"
    return generator, used_ema


def resolve_generator(generator_or_checkpoint) -> Generator:
    """A `Generator`, a `SAGAN` (EMA generator preferred) or a checkpoint dir -> `Generator`."""
    obj = generator_or_checkpoint
    if isinstance(obj, Generator):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return load_generator_from_checkpoint(os.fspath(obj))[0]
    if hasattr(obj, "generator") and isinstance(obj.generator, Generator):
        ema = getattr(obj, "ema_generator", None)
        return ema if ema is not None else obj.generator
    raise TypeError(
        "generator_or_checkpoint must be a Generator, a SAGAN or a checkpoint directory; "
        f"received {type(obj).__name__}."
    )


# -- versions -------------------------------------------------------------


def list_versions(base_path: str) -> list[int]:
    """Sorted integer versions (numeric subdirectories) under `base_path`."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(name) for name in os.listdir(base_path) if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    )


def _check_marker(base_path, config):
    """Refuses a base_path whose versions hold another model; writes the marker."""
    marker = os.path.join(base_path, MARKER_FILENAME)
    versions = list_versions(base_path)
    if os.path.isfile(marker):
        existing = _read_json(marker).get("generator", {})
        if versions and _comparable_config(existing) != _comparable_config(config):
            raise ExportError(
                f"{base_path} holds versions {versions} of a different model "
                f"(generator config in {marker} differs: {_comparable_config(existing)} "
                f"vs {_comparable_config(config)}); export to another base path"
            )
    elif versions:
        raise ExportError(
            f"{base_path} holds versions {versions} with no {MARKER_FILENAME}: not a keras_sagan export; "
            "export to another base path"
        )
    tmp = os.path.join(base_path, f".tmp-{uuid.uuid4().hex}.json")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"generator": json.loads(json.dumps(config))}, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, marker)


def export_generator(generator_or_checkpoint, base_path: str | os.PathLike, version: int | None = None) -> str:
    """Writes a generator as a TF Serving SavedModel at `base_path/<version>/`.

    The SavedModel is written into a temporary directory inside `base_path`
    and renamed into place, so a failed export leaves no partial version.
    An existing version is never overwritten. `base_path` gets a
    `keras_sagan_model.json` marker holding the generator config; exporting a
    different model (config other than in name, trainable or dtype) into a
    base path that already has versions is refused.

    Args:
        generator_or_checkpoint: a `Generator`; a `SAGAN` (its
            `ema_generator` when present, else its `generator`); or a
            checkpoint directory (see the module docstring: `config.json`
            plus `tf.train.CheckpointManager` checkpoints; EMA weights are
            preferred).
        base_path: str. The model's base directory, as in TF Serving's
            `base_path`. Created if missing.
        version: int >= 1 or None. None picks one more than the highest
            existing version (1 for the first).

    Returns:
        The path of the written version directory.

    Example:

    >>> path = keras_sagan.export.export_generator(generator, "saved_models/celeba64_demo")
    >>> images = tf.saved_model.load(path).signatures["serving_default"](z=z)["images"]
    """
    generator = resolve_generator(generator_or_checkpoint)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be None or an int >= 1; received {version!r}.")
    base_path = os.path.abspath(os.fspath(base_path))
    os.makedirs(base_path, exist_ok=True)
    config = generator.get_config()
    _check_marker(base_path, config)
    if version is None:
        versions = list_versions(base_path)
        version = versions[-1] + 1 if versions else 1
    target = os.path.join(base_path, str(version))
    if os.path.exists(target):
        raise ExportError(f"Version {version} already exists at {target}; refusing to overwrite it")

    module = serving_module(generator)
    signatures = {
        "serving_default": module.serving_default.get_concrete_function(),
        "sample": module.sample.get_concrete_function(),
    }
    tmp = os.path.join(base_path, f".tmp-{uuid.uuid4().hex}")
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        if os.path.exists(target):  # Another export won the race.
            raise ExportError(f"Version {version} already exists at {target}; refusing to overwrite it")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
