"""CelebA through TensorFlow Datasets, cropped and scaled like the PyTorch SAGAN reference."""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_sagan.data.errors import DatasetNotFoundError
from keras_sagan.data.preprocessing import (
    DEFAULT_SHUFFLE_BUFFER,
    _check_positive_int,
    finalize,
    preprocess_image,
    validate_global_batch,
)
from keras_sagan.errors import one_line

CELEBA_TFDS_NAME = "celeb_a:2.1.0"
"""The TFDS builder, with its version pinned so that a TFDS upgrade cannot change the data."""

CELEBA_CROP = 160
"""Central crop of the aligned 178x218 (WxH) faces, as in the PyTorch reference's CenterCrop(160)."""


def load_celeba(
    image_size: int = 64,
    global_batch_size: int = 64,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    download: bool = True,
    crop: int | None = CELEBA_CROP,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    seed: int | None = None,
    cache: bool | str | os.PathLike = False,
    strategy: tf.distribute.Strategy | None = None,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Loads CelebA's aligned faces as batches of float32 images in [-1, 1].

    The faces are 178 wide by 218 high. Like the PyTorch SAGAN reference (heykeetae/
    Self-Attention-GAN, whose CelebA transform is CenterCrop(160) -> Resize -> Normalize), the
    central 160x160 square is kept, which drops most of the background, then it is resized to
    `image_size` with an antialiased bilinear filter (see `preprocess_image`).

    Args:
        image_size: int. Side of the square output images. Defaults to `64`.
        global_batch_size: int. Examples per batch, summed over all replicas. Defaults to `64`.
        data_dir: path or None. TFDS data directory; `None` uses TFDS's default
            (`~/tensorflow_datasets`). Defaults to `None`.
        split: str. TFDS split: `"train"`, `"validation"` or `"test"` (TFDS slicing such as
            `"train[:10%]"` also works). Defaults to `"train"`.
        download: bool. Download and prepare CelebA into `data_dir` if it is not there yet
            (about 1.4 GB from Google Drive, which often hits its quota). With `False`, missing
            data raises `DatasetNotFoundError`. Defaults to `True`.
        crop: int or None. Central square crop before resizing; `None` keeps the largest
            central square (178x178). Defaults to `160`, as the reference.
        shuffle_buffer: int. Shuffle buffer in examples; `0` keeps the TFDS order and does not
            shuffle the TFDS files either. Defaults to `DEFAULT_SHUFFLE_BUFFER`.
        seed: int or None. Seed for the file and example shuffles; see `finalize`.
            Defaults to `None`.
        cache: bool or path. Cache the preprocessed images in memory (`True`) or in files with
            this prefix. 162,770 training images at 64x64 take about 8 GB. Defaults to `False`.
        strategy: `tf.distribute.Strategy` or None. Checks that the global batch divides across
            its replicas. Defaults to `None`.
        repeat: bool. Repeat forever. Defaults to `True`.

    Returns:
        A `tf.data.Dataset` of float32 tensors of shape `(global_batch_size, image_size,
        image_size, 3)`.

    Example:

    ```python
    ds = load_celeba(image_size=64, global_batch_size=64, data_dir="/data/tfds", seed=0)
    ```
    """
    # Check the arguments before a download that can take an hour.
    _check_positive_int("image_size", image_size)
    validate_global_batch(global_batch_size, strategy.num_replicas_in_sync if strategy else 1)
    builder = tfds.builder(CELEBA_TFDS_NAME, data_dir=data_dir)
    if not builder.is_prepared():
        if not download:
            raise DatasetNotFoundError(
                f"CelebA is not prepared in {builder.data_dir} (data_dir={data_dir!r}); "
                "download it with load_celeba(download=True) or `tfds build celeb_a "
                "--data_dir ...`, or unzip img_align_celeba/ and use load_image_folder(path)"
            )
        # TFDS surfaces network, checksum and quota failures as many exception types.
        try:
            builder.download_and_prepare()
        except Exception as err:
            raise DatasetNotFoundError(
                f"could not download CelebA into {builder.data_dir} "
                f"({type(err).__name__}: {one_line(err, limit=200)}); "
                "download img_align_celeba.zip by hand and use load_image_folder(path) "
                "on the unzipped img_align_celeba/"
            ) from err

    shuffle_files = shuffle_buffer > 0
    read_config = tfds.ReadConfig(shuffle_seed=seed) if seed is not None else None
    dataset = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config)
    return finalize(
        dataset,
        global_batch_size,
        preprocess=lambda example: preprocess_image(example["image"], image_size, crop),
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        cache=cache,
        repeat=repeat,
        strategy=strategy,
    )
