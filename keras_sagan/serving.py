"""What a served generator is: its inference graph and the TF Serving base-path layout.

`serving_module(generator)` is the `tf.Module` that `keras_sagan.export.export_generator` saves
as a TF Serving SavedModel and that `keras_sagan.export.loading` runs in-process for a Keras generator,
so both paths give the same images. Signatures (method `tensorflow/serving/predict`):

- `serving_default`: inputs `z` float32 `[batch, z_dim]` (and `labels` int32 `[batch]` for a
  class-conditional generator); outputs `images` float32 `[batch, H, W, 3]` in [-1, 1] and
  `images_uint8` uint8 `[batch, H, W, 3]`, `clip(round((images + 1) * 127.5), 0, 255)`.
- `sample`: scalar inputs `num_images` int32 (1 to `MAX_IMAGES`), `seed` int64 and `truncation`
  float32 (and `labels` int32 `[num_images]` for a conditional generator, or `[0]` to draw
  classes uniformly from the seed); `z` is drawn inside the graph by `sample_z`. Same outputs.
- `attention` (only for a generator with attention layers): inputs `z` (and `labels`) as
  `serving_default`'s, and scalar int32 `row` and `col`, a query pixel of the image. Outputs `images`,
  `images_uint8`, and per attention layer `<name>` float32 `[batch, k, k]` (where that pixel's cell
  attends over the layer's key grid; rows sum to 1) and `<name>_gamma` float32 `[batch]`. A separate
  function: `serving_default` and `sample` compute no map.

The graph calls the generator with `training=False`: BatchNorm uses its moving statistics and
spectral normalisation its stored `u` without updating it, so the same inputs always give the
same images.

A TF Serving base path holds numbered version directories (`list_versions`) and a
`MARKER_FILENAME` file with the generator config that every version shares.

`inference_model(generator, batch_size=None)` is the same inference graph as a functional Keras
model with named inputs (`z`, and `labels` for a conditional generator) and outputs (`images`,
`images_uint8`), which Keras' ONNX and LiteRT exporters convert (`keras_sagan.export`).

No XLA option: on the 2-core CPU this was measured on, `jit_compile=True` made the exported
function slower (64x64 conv_dim 64 generator: 25 vs 19 ms at batch 1, 182 vs 152 ms at batch 16,
750 vs 579 ms at batch 64; the small 32x32 models too), so the functions run without it.
"""

import math
import os

import tensorflow as tf

from keras_sagan.images import to_uint8
from keras_sagan.layers.spectral_normalization import SpectralNormalization

MAX_IMAGES = 1024
"""Largest `num_images` the `sample` signature accepts."""

MARKER_FILENAME = "keras_sagan_model.json"
"""Written beside the versions: the generator config every version shares."""
EXPORT_RECORD = os.path.join("assets.extra", "keras_sagan_export.json")
"""Inside a version directory: `{"step": the training step of the exported weights}` (TF Serving ignores it)."""

# Second halves of the stateless seeds: z and random labels use separate streams.
_Z_STREAM = 0
_LABEL_STREAM = 1


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
    """`(num_images,)` int32 classes drawn uniformly from `seed`: the `sample` signature's labels when none
    are given. A seed stream separate from `sample_z`'s, so the same seed gives the same z either way."""
    return tf.random.stateless_uniform(
        [num_images],
        tf.stack([tf.cast(seed, tf.int64), tf.constant(_LABEL_STREAM, tf.int64)]),
        minval=0,
        maxval=num_classes,
        dtype=tf.int32,
    )


def sample_inputs(num_images: int, z_dim: int, num_classes, seed: int, truncation: float = 0.0, label=None):
    """`(z, labels)` as NumPy: the inputs the `sample` signature draws for these arguments.

    `labels` is None for an unconditional model (`num_classes` None); otherwise `label` for every
    image, or, when `label` is None, the classes `sample_labels` draws from `seed`.
    """
    z = sample_z(num_images, z_dim, seed, truncation).numpy()
    if num_classes is None:
        return z, None
    if label is None:
        return z, sample_labels(num_images, num_classes, seed).numpy()
    return z, tf.fill([num_images], tf.cast(label, tf.int32)).numpy()


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
        if labels is None:
            args = (z,)
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
            args = (z, labels)
        if query is None:
            images = self._call_generator(*args, training=False)
        else:
            images, maps = self._call_generator(*args, training=False, return_attention=True)
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
        random_labels = sample_labels(num_images, self.num_classes, seed)
        labels = tf.cond(tf.size(labels) > 0, lambda: labels, lambda: random_labels)
        return self._generate(z, labels)


def serving_module(generator) -> tf.Module:
    """The `tf.Module` that `export_generator` saves, with `serving_default`
    and `sample` `tf.function`s taking the signatures' inputs (as keywords)
    and returning `{"images", "images_uint8"}`. Calling it in-process runs the
    same graph a model server runs."""
    if not generator.built:
        generator.build()
    return _ServingModule(generator)


def _plain_layer(layer):
    """`layer` with spectral norm folded: an SN wrapper becomes its inner layer holding W / sigma."""
    import keras

    if isinstance(layer, SpectralNormalization):
        inner = layer.layer
        target = inner.embeddings if isinstance(inner, keras.layers.Embedding) else inner.kernel
        target.assign(keras.ops.cast(layer.normalized_kernel(training=False), target.dtype))
        return inner
    if isinstance(layer, keras.Sequential) and any(isinstance(x, SpectralNormalization) for x in layer.layers):
        return keras.Sequential([_plain_layer(x) for x in layer.layers], name=layer.name)
    return layer


def _fold_spectral_norm(model):
    """Replaces, in place, every SN wrapper held by a layer of `model` (attribute or list item) by `_plain_layer`.

    The attributes are set past Keras' tracking (`object.__setattr__`): a built layer refuses new
    sub-layers, and this copy is only ever called for export. The inner layers' variables stay
    reachable through the wrappers, which nothing calls any more.
    """
    import keras

    for layer in list(model._flatten_layers(include_self=True, recursive=True)):
        for name, value in list(vars(layer).items()):
            if name.startswith("_"):
                continue
            if isinstance(value, list):
                for index, item in enumerate(value):
                    plain = _plain_layer(item) if isinstance(item, keras.layers.Layer) else item
                    if plain is not item:
                        list.__setitem__(value, index, plain)
            elif isinstance(value, keras.layers.Layer):
                plain = _plain_layer(value)
                if plain is not value:
                    object.__setattr__(layer, name, plain)


def inference_model(generator, batch_size: int | None = None):
    """A functional `keras.Model` of `generator`'s inference graph, for Keras' exporters.

    Inputs `{"z": float32 (batch, z_dim)}`, plus `"labels": int32 (batch,)` for a conditional
    generator; outputs `{"images": float32 (batch, H, W, 3) in [-1, 1], "images_uint8": uint8}`
    (the serving signatures' outputs). The generator runs with `training=False`: spectral norm
    divides by sigma from the stored `u` (no power iteration, no update), BatchNorm uses its
    moving statistics.

    The model holds a copy of `generator` (same config and weights) in which:
    - every `SpectralNormalization` wrapper is replaced by its inner layer, whose kernel is set to
      `W / sigma` (`normalized_kernel(training=False)`: sigma from the stored `u`). The graph then
      has no power iteration and reads no `u`, whatever the exporter folds. (Left to TFLite's
      converter, some W / sigma were not folded, and a conv with a computed filter needs TF's
      Select ops);
    - attention computes the whole map (`query_chunk_size=None`): the blocked path's run-time
      block sizes and `map_fn` loops would otherwise become ONNX `Loop` / TFLite `While` ops.
    The images are the generator's inference output (within float32 rounding).

    Args:
        generator: a built `Generator`.
        batch_size: int or None. A fixed batch dimension, or None for a dynamic one.
    """
    import keras

    if not generator.built:
        generator.build()
    config = {**generator.get_config(), "query_chunk_size": None}
    copy = type(generator).from_config(config)
    copy.build()
    copy.set_weights(generator.get_weights())
    _fold_spectral_norm(copy)
    inputs = {"z": keras.Input((generator.z_dim,), batch_size=batch_size, name="z", dtype="float32")}
    if generator.num_classes is None:
        images = copy(inputs["z"], training=False)
    else:
        inputs["labels"] = keras.Input((), batch_size=batch_size, name="labels", dtype="int32")
        images = copy(inputs["z"], inputs["labels"], training=False)
    images = keras.ops.cast(images, "float32")
    return keras.Model(inputs, {"images": images, "images_uint8": to_uint8(images)}, name="keras_sagan_inference")


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
