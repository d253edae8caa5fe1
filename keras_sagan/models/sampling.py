"""Sampling a generator for a person: `sample(generator, z, labels=None)` and the one label rule, `class_cycle`.

Every place that shows or serves a generator's images goes through here (or, inside a TF Serving graph, through
the same rule written in TensorFlow ops: `keras_sagan.export.saved_model.sample_labels`): TensorBoard's and the
sample folder's grids, `LoadedGenerator`, `keras-sagan sample`, `attention`, the explorer and the exports' `sample`
signature. The rule, when no labels are given to a class-conditional generator: image `i` of a sample drawn with
seed `s` (0 where there is no seed) gets class `(s + i) mod num_classes`. So a grid shows the classes in order, any
`num_classes` consecutive images hold every class once (balanced, as a metric wants), a single image's class moves
with its seed, and no random state is involved: the same inputs give the same images on every backend.
"""

from __future__ import annotations

import numpy as np


def class_cycle(num_images: int, num_classes: int | None, start: int = 0) -> np.ndarray | None:
    """The classes of `num_images` images that were given none: `(start + i) mod num_classes` for image `i`.

    Args:
        num_images: int. How many images.
        num_classes: int or None. The generator's class count; None (unconditional) gives None.
        start: int. The class of the first image, modulo `num_classes`: the seed of a seeded sample, or the index of
            the first image when a long sample is drawn in batches. Defaults to `0`.

    Returns:
        int32 `(num_images,)`, or None for an unconditional generator.

    Example:

    >>> class_cycle(5, 3, start=2)
    array([2, 0, 1, 2, 0], dtype=int32)
    """
    if num_classes is None:
        return None
    return ((start % num_classes + np.arange(num_images)) % num_classes).astype(np.int32)


def sample(generator, z, labels=None, return_attention: bool = False):
    """`generator`'s images for noise `z`, in inference mode (`training=False`), with `class_cycle`'s labels when
    a class-conditional generator is given none.

    Args:
        generator: a Keras `Generator` or a `keras_sagan.export.loading.LoadedGenerator` (anything called as
            `generator(z, labels, training=False)` with a `num_classes` attribute).
        z: float `(batch, z_dim)`.
        labels: None, int `(batch,)` classes, or float `(batch, num_classes)` class weights. None: `class_cycle`'s
            classes from 0 for a conditional generator, nothing for an unconditional one.
        return_attention: bool. Also return the attention maps (a Keras `Generator` only). Defaults to `False`.

    Returns:
        Images `(batch, H, W, C)` in [-1, 1] as the backend's tensors; with `return_attention`, `(images, maps)`.

    Example:

    >>> images = sample(keras_sagan.build_generator("celeba64"), np.zeros((4, 128), "float32"))
    """
    if labels is None:
        labels = class_cycle(len(z), generator.num_classes)
    if return_attention:
        return generator(z, labels, training=False, return_attention=True)
    return generator(z, labels, training=False)
