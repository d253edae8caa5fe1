"""Data pipelines for SAGAN: CelebA (TFDS), any image folder, MNIST and Fashion-MNIST, and an offline demo set.

Every loader returns a `tf.data.Dataset` of float32 batches of shape
`(global_batch_size, image_size, image_size, channels)` in [-1, 1], with `drop_remainder=True`:
3 channels for CelebA, 1 for the MNIST family, either for the demo set and image folders.

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
from keras_sagan.data.mnist import load_mnist
from keras_sagan.data.preprocessing import (
    DEFAULT_SHUFFLE_BUFFER,
    finalize,
    preprocess_image,
    to_uint8,
    validate_global_batch,
)
from keras_sagan.data.spec import DataSpec, check_data_arguments

DATASETS = ("celeba", "folder", "demo", "fashion_mnist", "mnist")
"""Names accepted by `load_dataset`."""

DATASET_CHANNELS = {"celeba": (3,), "folder": (3, 1), "demo": (3, 1), "fashion_mnist": (1,), "mnist": (1,)}
"""The channel counts each dataset can give, its default first: a grey dataset never gets fake colour."""

_LOADERS = {
    "celeba": load_celeba,
    "folder": load_image_folder,
    "demo": load_demo,
    "fashion_mnist": lambda **kwargs: load_mnist("fashion_mnist", **kwargs),
    "mnist": lambda **kwargs: load_mnist("mnist", **kwargs),
}


def load_dataset(name: str, **kwargs: Any) -> tf.data.Dataset:
    """Builds the dataset called `name` by calling its loader with `kwargs`.

    Args:
        name: str. One of `DATASETS`: `"celeba"` (`load_celeba`), `"folder"`
            (`load_image_folder`, needs `path=`), `"demo"` (`load_demo`), `"fashion_mnist"` or
            `"mnist"` (`load_mnist`).
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
    "DATASET_CHANNELS",
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
    "load_mnist",
    "preprocess_image",
    "to_uint8",
    "validate_global_batch",
]
