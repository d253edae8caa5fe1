"""Which BatchNorm statistics a generator samples with: moving averages, batch statistics, or standing statistics.

A generator trained with BatchNorm can sample three ways, and they differ in quality (BUILD.md,
"Sampling defaults", has the measured table):

- **moving statistics** (`generator(z, training=False)`): the exponential averages gathered during
  training, on weights that kept changing. For an EMA generator they are the live generator's
  statistics, gathered on other weights again;
- **batch statistics** (`sample_with_batch_statistics`): each sampling batch normalised by its own
  mean and variance, as the PyTorch reference samples (it never switches to eval mode). The
  images then depend on the rest of the batch;
- **standing statistics** (`recalibrate`, BigGAN's "standing stats", Brock et al. 2019): the
  moving statistics re-estimated on the sampling generator's own weights, as the plain average
  of the batch statistics over many batches of noise, then sampling in inference mode.

Spectral norm's `u` vectors are left as they were by all three: only BatchNorm statistics change.
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from keras_sagan.errors import bad_value


def batch_norm_layers(model) -> list:
    """The `keras.layers.BatchNormalization` layers of `model` (ours subclass Keras'), in creation order."""
    # Keras has no public recursive layer walk for subclassed models (`Model.layers` is one level deep).
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _moving_variables(layers) -> set[int]:
    return {id(v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)}


def _noise(generator, batch_size, seed_generator):
    z = keras.random.normal((batch_size, generator.z_dim), seed=seed_generator)
    labels = None
    if generator.num_classes is not None:
        labels = keras.random.randint((batch_size,), 0, generator.num_classes, seed=seed_generator)
    return z, labels


def recalibrate(generator, num_batches: int = 100, batch_size: int = 64, seed: int = 0) -> int:
    """Replaces `generator`'s BatchNorm moving statistics by standing statistics, in place.

    Runs `num_batches` forward passes in training mode on fresh noise; BatchNorm momentum is
    set to `(k - 1) / k` for the k-th pass, so each moving mean and variance ends as the plain
    average of the `num_batches` batch statistics (every batch weighs the same, unlike an
    exponential average). The spectral-norm `u` vectors and every other variable are restored.

    Args:
        generator: a built `Generator` (or any model with BatchNorm layers, `z_dim` and `num_classes`).
        num_batches: int. Forward passes averaged. Defaults to `100`.
        batch_size: int. Noise vectors per pass; use the training batch size, whose statistics
            the network learned with. Defaults to `64`.
        seed: int. Seed of the noise. Defaults to `0`.

    Returns:
        The number of BatchNorm layers recalibrated (0 for a network without BatchNorm).

    Example:

    ```python
    recalibrate(gan.sampling_generator(), num_batches=100, batch_size=64)
    images = gan.sampling_generator()(z, training=False)
    ```
    """
    for name, value in (("num_batches", num_batches), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(bad_value(name, value, "an int >= 1"))
    layers = batch_norm_layers(generator)
    if not layers:
        return 0
    moving = _moving_variables(layers)
    kept = [(v, ops.copy(v.value)) for v in generator.non_trainable_variables if id(v) not in moving]
    momenta = [layer.momentum for layer in layers]
    seed_generator = keras.random.SeedGenerator(seed)
    try:
        with _batch_statistics_on(layers):
            for k in range(1, num_batches + 1):
                for layer in layers:
                    layer.momentum = (k - 1) / k
                z, labels = _noise(generator, batch_size, seed_generator)
                generator(z, labels, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for variable, value in kept:
            variable.assign(value)
    return len(layers)


@contextlib.contextmanager
def _batch_statistics_on(layers):
    """Makes `layers` trainable for the block: a frozen Keras BatchNorm (an EMA generator is one) ignores `training`."""
    trainable = [layer.trainable for layer in layers]
    try:
        for layer in layers:
            layer.trainable = True
        yield
    finally:
        for layer, value in zip(layers, trainable):
            layer.trainable = value


def sample_with_batch_statistics(generator, z, labels=None):
    """`generator(z, labels)` with BatchNorm normalising by this batch's statistics (the reference's sampling).

    No variable changes: BatchNorm's moving statistics and spectral norm's `u` are put back
    after the training-mode forward pass. Spectral norm divides by the `sigma` of one more power
    iteration in that pass, as in training.

    Returns:
        The images, float32 `(B, H, W, channels)` in [-1, 1].
    """
    kept = [(v, ops.copy(v.value)) for v in generator.non_trainable_variables]
    try:
        with _batch_statistics_on(batch_norm_layers(generator)):
            return generator(z, labels, training=True)
    finally:
        for variable, value in kept:
            variable.assign(value)
