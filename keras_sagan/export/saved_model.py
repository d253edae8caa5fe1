"""TF Serving SavedModels: the served graph (`serving_module`), the base-path layout, and `export_generator`.

`serving_module(generator)` is the `tf.Module` that `export_generator` saves and that
`keras_sagan.export.loading` runs in-process for a Keras generator, so both paths give the same images.
Signatures (method `tensorflow/serving/predict`):

- `serving_default`: inputs `z` float32 `[batch, z_dim]` (and `labels` int32 `[batch]` for a
  class-conditional generator); outputs `images` float32 `[batch, H, W, 3]` in [-1, 1] and
  `images_uint8` uint8 `[batch, H, W, 3]`, `clip(round((images + 1) * 127.5), 0, 255)`.
- `sample`: scalar inputs `num_images` int32 (1 to `MAX_IMAGES`), `seed` int64 and `truncation`
  float32 (and `labels` int32 `[num_images]` for a conditional generator, or `[0]` for the classes of
  `keras_sagan.models.sampling.class_cycle`: image `i` gets `(seed + i) mod num_classes`); `z` is drawn
  inside the graph by `sample_z`. Same outputs.
- `attention` (only for a generator with attention layers): inputs `z` (and `labels`) as
  `serving_default`'s, and scalar int32 `row` and `col`, a query pixel of the image. Outputs `images`,
  `images_uint8`, and per attention layer `<name>` float32 `[batch, k, k]` (where that pixel's cell
  attends over the layer's key grid; rows sum to 1) and `<name>_gamma` float32 `[batch]`. A separate
  function: `serving_default` and `sample` compute no map.

The graph calls the generator with `training=False`: BatchNorm uses its moving statistics and
spectral normalisation its stored `u` without updating it, so the same inputs always give the
same images. The SavedModel loads with plain `tf.saved_model.load`; keras_sagan is not needed to serve it.

`export_generator` writes `base_path/<version>/`, the layout TF Serving's model server watches: numbered
version directories (`list_versions`) and a `MARKER_FILENAME` file with the generator config that every
version shares. A version is written through `keras_sagan.atomic_file.atomic_directory` (a temporary beside
it, renamed into place) while the export holds `base_path`'s lock (`EXPORT_LOCK`, a `RunLock`), so a temporary
found by the lock's holder was left by a killed export and is removed.

No XLA option: on the 2-core CPU this was measured on, `jit_compile=True` made the exported
function slower (64x64 conv_dim 64 generator: 25 vs 19 ms at batch 1, 182 vs 152 ms at batch 16,
750 vs 579 ms at batch 64; the small 32x32 models too), so the functions run without it.
"""

import errno
import json
import math
import os
import shutil
import sys

import numpy as np
import tensorflow as tf

from keras_sagan.atomic_file import atomic_directory, is_temporary
from keras_sagan.errors import one_line
from keras_sagan.export import loading  # A module (not names): loading imports this module too.
from keras_sagan.export.formats import ExportError
from keras_sagan.images import to_uint8
from keras_sagan.models.sampling import class_cycle
from keras_sagan.run_directory import write_json_atomically
from keras_sagan.run_lock import RunLock

MAX_IMAGES = 1024
"""Largest `num_images` the `sample` signature accepts."""

MARKER_FILENAME = "keras_sagan_model.json"
"""Written beside the versions: the generator config every version shares."""
EXPORT_RECORD = os.path.join("assets.extra", "keras_sagan_export.json")
"""Inside a version directory: `{"step": the training step of the exported weights}` (TF Serving ignores it)."""

EXPORT_LOCK = ".keras_sagan_export.lock"
"""In a base path: the lock an export holds while it writes a version (TF Serving ignores the file)."""

# Names of temporaries left by exports of keras_sagan before `atomic_file` (`.tmp-<hex>`, `.tmp-<host>-<pid>-<hex>`).
_OLD_TEMPORARY = ".tmp-"
# Config keys that name an instance rather than describe the model.
_IDENTITY_KEYS = ("name", "trainable", "dtype")

_Z_STREAM = 0  # The second half of `sample_z`'s stateless seed.


class _Busy(Exception):
    """`RunLock`'s error when another export holds a base path's lock (told as a one-line `ExportError`)."""


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


def sample_labels(num_images, num_classes: int, seed) -> tf.Tensor:
    """`(num_images,)` int32 classes `(seed + i) mod num_classes`: `keras_sagan.models.sampling.class_cycle` in
    TensorFlow ops, for the `sample` signature's graph (where `num_images` and `seed` are tensors)."""
    start = tf.math.floormod(tf.cast(seed, tf.int64), num_classes)
    return tf.cast(tf.math.floormod(start + tf.range(tf.cast(num_images, tf.int64)), num_classes), tf.int32)


def sample_inputs(num_images: int, z_dim: int, num_classes, seed: int, truncation: float = 0.0, label=None):
    """`(z, labels)` as NumPy: the inputs the `sample` signature draws for these arguments.

    `labels` is None for an unconditional model (`num_classes` None); otherwise `label` for every
    image, or, when `label` is None, `class_cycle(num_images, num_classes, start=seed)`.
    """
    z = sample_z(num_images, z_dim, seed, truncation).numpy()
    if num_classes is None:
        return z, None
    if label is None:
        return z, class_cycle(num_images, num_classes, start=seed)
    return z, np.full((num_images,), label, np.int32)


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
        # `attention` is a signature of its own: serving_default's and sample's graphs are unchanged.
        self._attention_layers = lambda: list(generator.attention_layers)
        self.image_size = generator.image_size
        if generator.attention_layers:
            query_specs = [tf.TensorSpec([], tf.int32, name="row"), tf.TensorSpec([], tf.int32, name="col")]
            specs = [z_spec] if generator.num_classes is None else [z_spec, labels_spec]
            method = self._attention if generator.num_classes is None else self._attention_conditional
            self.attention = tf.function(method, autograph=False, input_signature=[*specs, *query_specs])

    def _attention(self, z, row, col):
        return self._generate(z, query=(row, col))

    def _attention_conditional(self, z, labels, row, col):
        return self._generate(z, labels, query=(row, col))

    def _query_maps(self, maps, row, col, batch):
        """`{layer name: (batch, k, k) weights of query (row, col)}` and `{name}_gamma: (batch,)` per layer."""
        size = self.image_size
        message = f"row and col must be pixels of the {size}x{size} image, in [0, {size})"
        checks = [
            tf.debugging.assert_non_negative(tf.stack([row, col]), message=message),
            tf.debugging.assert_less(tf.stack([row, col]), size, message=message),
        ]
        with tf.control_dependencies(checks):
            row, col = tf.identity(row), tf.identity(col)
        outputs = {}
        for layer, attention in zip(self._attention_layers(), maps):
            side = math.isqrt(attention.shape[1])  # the layer's query grid
            keys = math.isqrt(attention.shape[2])  # its key grid (half the side when keys are pooled)
            index = (row * side // size) * side + col * side // size
            outputs[layer.name] = tf.reshape(tf.gather(tf.cast(attention, tf.float32), index, axis=1), [-1, keys, keys])
            # One gamma per image: TF Serving's row format needs every output to share the batch dimension.
            outputs[f"{layer.name}_gamma"] = tf.fill([batch], tf.cast(_tf_variable(layer.gamma), tf.float32))
        return outputs

    def _generate(self, z, labels=None, query=None):
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
        if labels is not None:
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
        if query is None:
            images = self._call_generator(z, labels, training=False)
        else:
            images, maps = self._call_generator(z, labels, training=False, return_attention=True)
        images = tf.cast(images, tf.float32)
        outputs = {"images": images, "images_uint8": to_uint8(images)}
        if query is not None:
            outputs.update(self._query_maps(maps, *query, tf.shape(z)[0]))
        return outputs

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
        cycled = sample_labels(num_images, self.num_classes, seed)
        labels = tf.cond(tf.size(labels) > 0, lambda: labels, lambda: cycled)
        return self._generate(z, labels)


def serving_module(generator) -> tf.Module:
    """The `tf.Module` that `export_generator` saves, with `serving_default`
    and `sample` `tf.function`s taking the signatures' inputs (as keywords)
    and returning `{"images", "images_uint8"}`. Calling it in-process runs the
    same graph a model server runs."""
    if not generator.built:
        generator.build()
    return _ServingModule(generator)


def latest_version_path(base_path: str) -> str | None:
    """The absolute path of the highest version under `base_path`, or None when it has none."""
    versions = list_versions(base_path)
    return os.path.join(os.path.abspath(base_path), str(versions[-1])) if versions else None


def list_versions(base_path: str) -> list[int]:
    """Sorted integer versions (numeric subdirectories) under `base_path`."""
    if not os.path.isdir(base_path):
        return []
    return sorted(
        int(name) for name in os.listdir(base_path) if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    )


def _comparable_config(config):
    config = json.loads(json.dumps(config))  # tuples -> lists, as on disk
    return {k: v for k, v in config.items() if k not in _IDENTITY_KEYS}


def _check_marker(base_path, config):
    """Refuses a base_path whose versions hold another model; writes the marker."""
    marker = os.path.join(base_path, MARKER_FILENAME)
    versions = list_versions(base_path)
    if os.path.isfile(marker):
        existing = (loading.read_marker(base_path) or {}).get("generator", {})
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
    write_json_atomically(marker, {"generator": config})


def remove_stray_temporaries(base_path: str) -> list[str]:
    """Removes the temporaries of killed exports in `base_path`; returns their paths. Call it holding `EXPORT_LOCK`:
    no other export is writing then, so every temporary is a stray (`atomic_file.is_temporary`, and the `.tmp-`
    names of keras_sagan's exports before it)."""
    names = sorted(os.listdir(base_path)) if os.path.isdir(base_path) else []
    removed = [os.path.join(base_path, n) for n in names if is_temporary(n) or n.startswith(_OLD_TEMPORARY)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def export_generator(
    generator_or_checkpoint, base_path: str | os.PathLike, version: int | None = None, step: int | None = None
) -> str:
    """Writes a generator as a TF Serving SavedModel at `base_path/<version>/`.

    The SavedModel is written into a temporary directory beside the version
    (`atomic_file.atomic_directory`) and renamed into place, so a failed export
    leaves no partial version. An existing version is never overwritten. The
    export holds `base_path`'s `EXPORT_LOCK` meanwhile: a second export into the
    same base path is refused in one line, and temporaries of killed exports
    are removed. `base_path` gets a
    `keras_sagan_model.json` marker holding the generator config; exporting a
    different model (config other than in name, trainable or dtype) into a
    base path that already has versions is refused.

    Args:
        generator_or_checkpoint: a `Generator`; a `SAGAN` (its
            `ema_generator` when present, else its `generator`); or any path
            `keras_sagan.export.loading.load_generator` reads but a SavedModel
            (a run directory: its newest readable checkpoint, the EMA weights
            when present; a `.keras` file; a preset).
        base_path: str. The model's base directory, as in TF Serving's
            `base_path`. Created if missing.
        version: int >= 1 or None. None picks one more than the highest
            existing version (1 for the first).
        step: int or None. The training step of the weights, recorded in
            the version (`EXPORT_RECORD`) so that a rerun can tell
            whether the latest version is up to date. None: the checkpoint's
            step when exporting a run directory, else unrecorded.

    Returns:
        The path of the written version directory.

    Example:

    >>> path = keras_sagan.export_generator(generator, "saved_models/celeba64_demo")
    >>> images = tf.saved_model.load(path).signatures["serving_default"](z=z)["images"]
    """
    if isinstance(generator_or_checkpoint, (str, os.PathLike)):
        loaded = loading.load_generator(generator_or_checkpoint)  # One-line errors; falls back past unreadable ones.
        step = loaded.step if step is None else step
    generator = loading.resolve_generator(
        loaded if isinstance(generator_or_checkpoint, (str, os.PathLike)) else generator_or_checkpoint
    )
    loading.check_finite_generator(generator, "the generator to export")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be None or an int >= 1; received {version!r}.")
    base_path = os.path.abspath(os.fspath(base_path))
    os.makedirs(base_path, exist_ok=True)
    lock = RunLock(os.path.join(base_path, EXPORT_LOCK), error=_Busy, warn=lambda line: print(line, file=sys.stderr))
    try:
        lock.acquire()
    except _Busy:
        raise ExportError(
            f"another export is writing to {base_path} (it holds {lock.path}); wait for it to end, "
            "or export to another base path"
        ) from None
    with lock:
        remove_stray_temporaries(base_path)
        return _write_version(generator, base_path, version, step)


def _write_version(generator, base_path, version, step):
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
    if hasattr(module, "attention"):  # a generator with attention layers: maps for one query pixel
        signatures["attention"] = module.attention.get_concrete_function()
    try:
        with atomic_directory(target) as tmp:
            tf.saved_model.save(module, tmp, signatures=signatures)
            if step is not None:
                write_json_atomically(os.path.join(tmp, EXPORT_RECORD), {"step": int(step)})
    except FileExistsError:  # `target` appeared meanwhile (written by a keras_sagan older than `EXPORT_LOCK`).
        raise ExportError(f"Version {version} already exists at {target}; refusing to overwrite it") from None
    except (tf.errors.OpError, OSError) as err:
        full = isinstance(err, tf.errors.ResourceExhaustedError) or getattr(err, "errno", None) == errno.ENOSPC
        raise ExportError(
            f"cannot write the export to {base_path}"
            + (" (no space left on the device)" if full else "")
            + f": {one_line(err, 300)}; nothing was exported, the earlier versions are kept"
        ) from None
    return target
