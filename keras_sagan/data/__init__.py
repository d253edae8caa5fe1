"""Data pipelines for SAGAN: CelebA (TFDS), any image folder, and an offline demo set.

Every loader returns a `tf.data.Dataset` of float32 batches of shape
`(global_batch_size, image_size, image_size, 3)` in [-1, 1], with `drop_remainder=True`.

`DataSpec` (data/spec.py) is the one dispatch from dataset arguments to a loader call.

Example:

```python
from keras_sagan.data import DataSpec, load_dataset

ds = load_dataset("demo", image_size=32, global_batch_size=20, seed=0)
ds = DataSpec("folder", image_folder="faces").load(image_size=64, global_batch_size=64, seed=0)
```
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_sagan.data.celeba import load_celeba
from keras_sagan.data.demo import demo_num_examples, load_demo
from keras_sagan.data.errors import DatasetNotFoundError
from keras_sagan.data.folder import list_images, load_image_folder
from keras_sagan.data.preprocessing import (
    DEFAULT_SHUFFLE_BUFFER,
    finalize,
    preprocess_image,
    to_uint8,
    validate_global_batch,
)
from keras_sagan.data.spec import DataSpec, check_data_arguments

DATASETS = ("celeba", "folder", "demo")
"""Names accepted by `load_dataset`."""

_LOADERS = {"celeba": load_celeba, "folder": load_image_folder, "demo": load_demo}


def load_dataset(name: str, **kwargs: Any) -> tf.data.Dataset:
    """Builds the dataset called `name` by calling its loader with `kwargs`.

    Args:
        name: str. One of `DATASETS`: `"celeba"` (`load_celeba`), `"folder"`
            (`load_image_folder`, needs `path=`) or `"demo"` (`load_demo`).
        **kwargs: passed to the loader unchanged.

    Returns:
        The loader's `tf.data.Dataset`.

    Example:

    ```python
    ds = load_dataset("folder", path="img_align_celeba", crop=160, image_size=64)
    ```
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return _LOADERS[name](**kwargs)


__all__ = [
    "DATASETS",
    "DEFAULT_SHUFFLE_BUFFER",
    "DataSpec",
    "DatasetNotFoundError",
    "demo_num_examples",
    "finalize",
    "check_data_arguments",
    "list_images",
    "load_celeba",
    "load_dataset",
    "load_demo",
    "load_image_folder",
    "preprocess_image",
    "to_uint8",
    "validate_global_batch",
]
