"""Image preprocessing and the shared tail (cache, shuffle, repeat, batch) of every pipeline.

The inverse of the [-1, 1] scaling, `to_uint8`, is owned by `keras_sagan.images` and re-exported
here (as `keras_sagan.data.to_uint8`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf

from keras_sagan.images import to_uint8  # noqa: F401  (re-exported: the inverse of the scaling below)

DEFAULT_SHUFFLE_BUFFER = 2048
"""Default shuffle buffer, in examples. 2048 float32 images of 64x64x3 take about 100 MB."""


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
    """Returns `image` with exactly 3 channels: gray (1) and gray+alpha (2) are tiled, alpha dropped."""
    channels = image.shape[-1]
    if channels is not None:
        if channels in (1, 2):
            return tf.tile(image[..., :1], [1, 1, 3])
        if channels in (3, 4):
            return image[..., :3]
        raise ValueError(f"image must have 1, 2, 3 or 4 channels, got shape {image.shape}")
    # Decoded files (tf.io.decode_image) have an unknown channel count until run time.
    image = tf.cond(
        tf.shape(image)[-1] < 3,
        lambda: tf.tile(image[..., :1], [1, 1, 3]),
        lambda: image[..., :3],
    )
    return tf.ensure_shape(image, [None, None, 3])


def _to_grey(image: tf.Tensor) -> tf.Tensor:
    """Returns `image` with 1 channel: grey (and gray+alpha) kept, RGB(A) converted by ITU-R 601 luma."""
    channels = image.shape[-1]
    if channels is None:
        image = _to_rgb(image)
        channels = 3
    if channels in (1, 2):
        return image[..., :1]
    if channels in (3, 4):
        grey = tf.image.rgb_to_grayscale(tf.cast(image[..., :3], tf.float32))
        return tf.cast(tf.round(grey), image.dtype) if image.dtype.is_integer else grey
    raise ValueError(f"image must have 1, 2, 3 or 4 channels, got shape {image.shape}")


def preprocess_image(image: tf.Tensor, image_size: int, crop: int | None = None, channels: int = 3) -> tf.Tensor:
    """Turns one decoded image into a square float32 RGB image in [-1, 1].

    Steps, in order:

    1. Channels: with `channels=3`, grayscale is tiled to RGB; RGBA (and gray+alpha) lose their
       alpha channel. With `channels=1`, RGB is converted to grey (ITU-R 601 luma).
    2. Central square crop of side `crop`, clamped to `min(H, W)`; without `crop`, the largest
       central square. The offsets are `(H - side) // 2` and `(W - side) // 2`, the same as
       torchvision's `CenterCrop` whenever the margins are even (as for CelebA: 29 rows, 9 columns).
    3. Resize to `image_size` x `image_size`, bilinear with `antialias=True`. When shrinking
       (CelebA 160 -> 64), antialiasing widens the filter to cover every source pixel, so the
       result is a proper area average, as PIL's resize (used by the PyTorch reference) gives.
       Without it, bilinear reads only the 2x2 pixels nearest each output pixel and aliases
       fine texture such as hair into moire.
    4. Scale to float32 in [-1, 1]: integer images are divided by their dtype's maximum (255 for
       uint8), float images are taken to be in [0, 1] already (the `tf.image` convention).
       The result is clipped to [-1, 1] against float rounding in the resize.

    Args:
        image: tensor of shape `(H, W, C)`, C in {1, 2, 3, 4}, dtype uint8/uint16 or float.
        image_size: int. Side of the square output.
        crop: int or None. Side of the central square to crop before resizing, clamped to
            `min(H, W)`. Defaults to `None`, the largest central square.
        channels: int. 3 (RGB) or 1 (grey). Defaults to `3`.

    Returns:
        A float32 tensor of shape `(image_size, image_size, channels)` with values in [-1, 1].

    Example:

    ```python
    image = tf.io.decode_image(tf.io.read_file("face.png"), expand_animations=False)
    x = preprocess_image(image, image_size=64, crop=160)  # (64, 64, 3) in [-1, 1]
    ```
    """
    _check_positive_int("image_size", image_size)
    if crop is not None:
        _check_positive_int("crop", crop)
    image = tf.convert_to_tensor(image)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(f"image must have shape (H, W, C), got shape {image.shape}")

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    image = _to_rgb(image) if channels == 3 else _to_grey(image)

    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    side = tf.minimum(height, width)
    if crop is not None:
        side = tf.minimum(side, crop)
    top = (height - side) // 2
    left = (width - side) // 2
    image = image[top : top + side, left : left + side, :]

    if image.dtype.is_integer:
        image = tf.cast(image, tf.float32) / (image.dtype.max / 2.0) - 1.0
    else:
        image = tf.cast(image, tf.float32) * 2.0 - 1.0
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.clip_by_value(image, -1.0, 1.0)


def validate_global_batch(global_batch_size: int, num_replicas: int = 1) -> None:
    """Checks that the global batch splits evenly across replicas.

    Keras `fit()` splits each global batch across `num_replicas` when a strategy distributes
    the dataset, so every replica gets `global_batch_size // num_replicas` examples.

    Args:
        global_batch_size: int. Examples per step, summed over all replicas.
        num_replicas: int. Replicas in sync (`strategy.num_replicas_in_sync`). Defaults to `1`.

    Returns:
        None. Raises `ValueError` when either number is not a positive integer or when the
        batch does not divide across the replicas.

    Example:

    ```python
    validate_global_batch(64, strategy.num_replicas_in_sync)
    ```
    """
    _check_positive_int("global_batch_size", global_batch_size)
    _check_positive_int("num_replicas", num_replicas)
    if global_batch_size % num_replicas:
        raise ValueError(
            f"global batch size {global_batch_size} does not divide across {num_replicas} "
            f"replicas; use a multiple of {num_replicas}"
        )


def finalize(
    dataset: tf.data.Dataset,
    global_batch_size: int,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    seed: int | None = None,
    cache: bool | str | os.PathLike = False,
    repeat: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    preprocess: Callable | None = None,
) -> tf.data.Dataset:
    """Preprocesses, caches, shuffles, repeats, batches and prefetches a dataset of single examples.

    The order is preprocess -> cache -> shuffle -> repeat -> batch -> prefetch: the cache holds each
    preprocessed example once and every epoch is reshuffled from it. Batches have exactly `global_batch_size`
    examples (`drop_remainder=True`), which static shapes under XLA and `tf.distribute` need.

    Args:
        dataset: `tf.data.Dataset` of single preprocessed examples.
        global_batch_size: int. Examples per batch, summed over all replicas.
        shuffle_buffer: int. Shuffle buffer size in examples; `0` turns shuffling off and keeps
            the input order. Defaults to `DEFAULT_SHUFFLE_BUFFER`.
        seed: int or None. Shuffle seed. With a seed, the shuffle order is reproducible (each
            epoch still gets a new order) and `tf.data.Options().deterministic` is set to True.
            Defaults to `None`.
        cache: bool or path. `True` caches the examples in memory, a path caches them in files
            with that prefix; both before shuffling. Defaults to `False`.
        repeat: bool. Repeat forever, for `fit(steps_per_epoch=...)`. Defaults to `True`.
        strategy: `tf.distribute.Strategy` or None. When given, `global_batch_size` must be a
            multiple of `strategy.num_replicas_in_sync`. Defaults to `None`.
        preprocess: callable or None. Applied to every example, in parallel (`tf.data.AUTOTUNE`),
            before the cache. Defaults to `None` (the examples as they are).

    Returns:
        The batched `tf.data.Dataset`.

    Example:

    ```python
    ds = finalize(tf.data.Dataset.from_tensor_slices(images), 64, seed=0, repeat=False)
    ```
    """
    num_replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    validate_global_batch(global_batch_size, num_replicas)
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be a non-negative integer, got {shuffle_buffer!r}")

    if preprocess is not None:
        dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if cache is True:
        dataset = dataset.cache()
    elif cache:
        dataset = dataset.cache(os.fspath(cache))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(global_batch_size, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    if seed is not None:
        options = tf.data.Options()
        options.deterministic = True
        dataset = dataset.with_options(options)
    return dataset
