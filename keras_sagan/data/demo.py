"""The offline default dataset: the 100 LFW faces that ship inside scikit-image."""

from __future__ import annotations

import numpy as np
import skimage.data
import tensorflow as tf

from keras_sagan.data.preprocessing import finalize, preprocess_image

DEMO_NUM_EXAMPLES = 100


def _demo_faces() -> np.ndarray:
    """Returns the faces of `skimage.data.lfw_subset()` as an array of shape (100, 25, 25, 1).

    `lfw_subset()` holds 200 grayscale 25x25 crops from Labeled Faces in the Wild; its docstring
    states "100 first images are faces and subsequent 100 are non-faces" (background patches),
    which a look at the images confirms, so the first 100 are kept. The docstring (scikit-image
    0.26) announces uint8, but the array is float64 in [0, 1]; `preprocess_image` handles both.
    """
    faces = skimage.data.lfw_subset()[:DEMO_NUM_EXAMPLES]
    if faces.dtype != np.uint8:
        faces = faces.astype(np.float32)
    return faces[..., np.newaxis]


def demo_num_examples() -> int:
    """Returns the number of images in the demo dataset.

    Returns:
        `100`, the faces of `skimage.data.lfw_subset()`.

    Example:

    ```python
    steps_per_epoch = demo_num_examples() // 20
    ```
    """
    return DEMO_NUM_EXAMPLES


def _random_flip(dataset: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Flips each image left-right with probability 1/2, differently in every epoch.

    The random numbers come from `tf.data.Dataset.random`, zipped in and re-drawn on each
    iteration, and drive a stateless flip: with a seed the flips repeat across pipeline builds
    even when the map runs in parallel.
    """
    noise = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip((dataset, noise))
    return dataset.map(
        lambda image, draw: tf.image.stateless_random_flip_left_right(
            image, seed=tf.stack([draw, tf.constant(0, tf.int64)])
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def load_demo(
    image_size: int = 32,
    global_batch_size: int = 20,
    seed: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    repeat: bool = True,
    shuffle_buffer: int = DEMO_NUM_EXAMPLES,
    flip: bool = False,
    channels: int = 3,
) -> tf.data.Dataset:
    """Loads the 100 LFW faces bundled with scikit-image: works offline, with no download.

    The 25x25 grayscale faces are tiled to RGB, resized to `image_size` and scaled to [-1, 1].
    They are enough to smoke-test training and the tooling, not to train a good model.

    Args:
        image_size: int. Side of the square output images. Defaults to `32`.
        global_batch_size: int. Examples per batch, summed over all replicas. Defaults to `20`,
            which splits 100 into whole batches.
        seed: int or None. Seed for the shuffle and the flips; see `finalize`. Defaults to `None`.
        strategy: `tf.distribute.Strategy` or None. Checks that the global batch divides across
            its replicas. Defaults to `None`.
        repeat: bool. Repeat forever. Defaults to `True`.
        shuffle_buffer: int. Shuffle buffer in examples; `0` keeps the scikit-image order.
            Defaults to `100`, a full shuffle.
        flip: bool. Random horizontal flips, drawn anew in every epoch, to augment the tiny
            dataset. Defaults to `False`.
        channels: int. 3 (the grey faces tiled to RGB) or 1. Defaults to `3`.

    Returns:
        A `tf.data.Dataset` of float32 tensors of shape `(global_batch_size, image_size,
        image_size, 3)`.

    Example:

    ```python
    ds = load_demo(image_size=32, global_batch_size=20, seed=0)
    ```
    """
    dataset = tf.data.Dataset.from_tensor_slices(_demo_faces())
    dataset = dataset.map(lambda image: preprocess_image(image, image_size, channels=channels))
    # The 100 images take 1.2 MB at 32x32: cache them once rather than resize every epoch.
    dataset = dataset.cache()
    if flip:
        dataset = _random_flip(dataset, seed)
    return finalize(
        dataset,
        global_batch_size,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        strategy=strategy,
        repeat=repeat,
    )
