"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, read from IDX files or through `keras.datasets`.

Where the files are looked for, in order (the first folder holding all four files wins):

1. `data_dir`, when given: a folder of the four IDX files (`train-images-idx3-ubyte.gz`,
   `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`; gzipped
   or not), or for MNIST Keras' `mnist.npz`;
2. the Keras cache, `~/.keras/datasets/fashion-mnist/` (the IDX files `keras.datasets.fashion_mnist`
   downloads) or `~/.keras/datasets/mnist.npz`;
3. Debian's `dataset-fashion-mnist` package, `/usr/share/datasets/fashion-mnist/` (works offline:
   `apt-get install dataset-fashion-mnist`);
4. with `download=True`, `keras.datasets.<name>.load_data()`, which downloads into the Keras cache.

How 28x28 becomes the model's size: the image is **padded** with 2 black pixels on each side to
32x32, and then, for other sizes, resized (bilinear with antialiasing). Padding is exact: the
datasets' background is black (0), so the pad adds no edge and blurs no stroke, and the crop back
to 28x28 recovers the original. Resizing 28 to 32 directly would interpolate every pixel. The pad
first also keeps the object's share of the frame (28/32) the same at every size. The metrics read
real images through this same mapping (`keras_sagan.metrics` take the loader's output).
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow as tf

from keras_sagan.data.errors import DatasetNotFoundError
from keras_sagan.data.preprocessing import finalize

NATIVE_SIZE = 28
PADDED_SIZE = 32
NUM_CLASSES = 10
SPLITS = ("train", "test")
NAMES = ("fashion_mnist", "mnist")

# The IDX file names of both datasets (the same four names; the Keras cache keeps each set in its own folder).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_KERAS_CACHE = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
_KERAS_FOLDERS = {"fashion_mnist": os.path.join(_KERAS_CACHE, "fashion-mnist"), "mnist": _KERAS_CACHE}
_DEBIAN_FOLDERS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
_INSTALL_HINT = {
    "fashion_mnist": "`apt-get install dataset-fashion-mnist`, or pass download=True (--download) when online",
    "mnist": "pass download=True (--download) when online, or data_dir pointing at the four IDX files",
}
CLASS_NAMES = {
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple(str(digit) for digit in range(10)),
}


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(NAMES)}")


def _idx_path(folder: str, stem: str) -> str | None:
    for candidate in (stem + ".gz", stem):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (gzipped or not) into a uint8 array of the shape its header gives.

    The format (LeCun's): two zero bytes, a type byte (8 = unsigned byte), the number of
    dimensions, then each dimension as a big-endian int32, then the data.

    Raises:
        DatasetNotFoundError: one line, when the file is not a uint8 IDX file or is truncated.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DatasetNotFoundError(f"cannot read IDX file {path}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetNotFoundError(f"{path} is not an IDX file of unsigned bytes (header {data[:4].hex()})")
    rank = data[3]
    header = 4 + 4 * rank
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if len(data) != header + int(np.prod(shape)):
        raise DatasetNotFoundError(
            f"{path} holds {len(data) - header} bytes of data; its header {shape} needs {int(np.prod(shape))}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _read_folder(folder: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    image_stem, label_stem = IDX_FILES[split]
    image_path, label_path = _idx_path(folder, image_stem), _idx_path(folder, label_stem)
    if image_path is None or label_path is None:
        return None
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (NATIVE_SIZE, NATIVE_SIZE) or labels.shape != images.shape[:1]:
        raise DatasetNotFoundError(
            f"{image_path} and {label_path} must hold (N, 28, 28) images and (N,) labels; "
            f"received {images.shape} and {labels.shape}"
        )
    return images, labels


def _read_npz(path: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    if not os.path.isfile(path):
        return None
    with np.load(path) as arrays:
        prefix = "x_train" if split == "train" else "x_test"
        return arrays[prefix], arrays["y" + prefix[1:]]


def _candidates(name: str, data_dir: str | None) -> list[str]:
    if data_dir is not None:
        return [os.path.abspath(data_dir)]
    return [_KERAS_FOLDERS[name], _DEBIAN_FOLDERS[name]]


def load_mnist_arrays(
    name: str = "fashion_mnist", split: str = "train", data_dir: str | None = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(images, labels)` of one split: uint8 `(N, 28, 28)` and uint8 `(N,)`.

    Args:
        name: str. `"fashion_mnist"` or `"mnist"`. Defaults to `"fashion_mnist"`.
        split: str. `"train"` (60,000 images) or `"test"` (10,000). Defaults to `"train"`.
        data_dir: str or None. Folder of the four IDX files (or MNIST's `mnist.npz`). Unset: the
            Keras cache, then Debian's package folder (see the module docstring). Defaults to `None`.
        download: bool. When nothing is found, download through `keras.datasets`. Defaults to `False`.

    Raises:
        DatasetNotFoundError: one line naming every path tried and how to get the files.

    Example:

    ```python
    images, labels = load_mnist_arrays("fashion_mnist", "test")  # (10000, 28, 28), (10000,)
    ```
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    tried = []
    for folder in _candidates(name, data_dir):
        found = _read_folder(folder, split)
        if found is None and name == "mnist":
            npz = os.path.join(folder, "mnist.npz")
            found = _read_npz(npz, split)
            tried.append(npz)
        if found is not None:
            return found
        tried.append(os.path.join(folder, IDX_FILES[split][0] + "[.gz]"))
    if download and data_dir is None:
        import keras

        loader = keras.datasets.fashion_mnist if name == "fashion_mnist" else keras.datasets.mnist
        try:
            train, test = loader.load_data()
        except Exception as error:  # keras.utils.get_file raises bare Exceptions offline
            raise DatasetNotFoundError(f"downloading {name} through keras.datasets failed: {error}") from None
        return train if split == "train" else test
    raise DatasetNotFoundError(f"{name} {split} split not found; tried {', '.join(tried)}; {_INSTALL_HINT[name]}")


def mnist_to_model(images: tf.Tensor, image_size: int, channels: int = 1) -> tf.Tensor:
    """Maps uint8 28x28 images to float32 `(..., S, S, channels)` in [-1, 1].

    Takes `(28, 28)`, `(28, 28, 1)`, `(N, 28, 28)` or `(N, 28, 28, 1)`. The pad to 32 and the
    resize described in the module docstring, then `x / 127.5 - 1`. `channels=3` tiles the grey
    image (for a network that takes RGB).
    """
    images = tf.convert_to_tensor(images)
    if images.shape[-1] != 1:
        images = images[..., tf.newaxis]
    batched = images.shape.rank == 4
    if not batched:
        images = images[tf.newaxis]
    margin = (PADDED_SIZE - NATIVE_SIZE) // 2
    images = tf.pad(images, [[0, 0], [margin, margin], [margin, margin], [0, 0]])
    images = tf.cast(images, tf.float32) / 127.5 - 1.0
    if image_size != PADDED_SIZE:
        images = tf.image.resize(images, [image_size, image_size], method="bilinear", antialias=True)
        images = tf.clip_by_value(images, -1.0, 1.0)
    if channels == 3:
        images = tf.tile(images, [1, 1, 1, 3])
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return images if batched else images[0]


def load_mnist(
    name: str = "fashion_mnist",
    image_size: int = 32,
    global_batch_size: int = 64,
    seed: int | None = None,
    strategy: tf.distribute.Strategy | None = None,
    repeat: bool = True,
    shuffle_buffer: int = 60000,
    split: str = "train",
    data_dir: str | None = None,
    download: bool = False,
    channels: int = 1,
    labels: bool = False,
) -> tf.data.Dataset:
    """Loads MNIST or Fashion-MNIST as batches of float32 `(B, S, S, channels)` in [-1, 1].

    Args:
        name: str. `"fashion_mnist"` or `"mnist"`. Defaults to `"fashion_mnist"`.
        image_size: int. Side of the output: 28x28 is padded to 32 and then resized. Defaults to `32`.
        global_batch_size: int. Examples per batch, over all replicas. Defaults to `64`.
        seed: int or None. Shuffle seed (see `finalize`). Defaults to `None`.
        strategy: `tf.distribute.Strategy` or None. Checks the batch divides. Defaults to `None`.
        repeat: bool. Repeat forever. Defaults to `True`.
        shuffle_buffer: int. Shuffle buffer; the default shuffles the whole train split.
        split: str. `"train"` or `"test"`. Defaults to `"train"`.
        data_dir: str or None. See `load_mnist_arrays`. Defaults to `None`.
        download: bool. See `load_mnist_arrays`. Defaults to `False`.
        channels: int. 1 (the data's own) or 3 (tiled). Defaults to `1`.
        labels: bool. Yield `(images, labels)` with int32 labels, for conditional models.
            Defaults to `False`.

    Returns:
        A `tf.data.Dataset` of image batches, or of `(images, labels)` pairs.

    Example:

    ```python
    ds = load_mnist("fashion_mnist", image_size=32, global_batch_size=64, seed=0)
    ```
    """
    images, classes = load_mnist_arrays(name, split, data_dir, download)
    # The whole split takes 60000 * 32 * 32 * 4 bytes = 246 MB as float32: map once, then cache.
    dataset = tf.data.Dataset.from_tensor_slices((images[..., np.newaxis], classes.astype(np.int32)))
    dataset = dataset.map(
        lambda image, label: (mnist_to_model(image, image_size, channels), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if not labels:
        dataset = dataset.map(lambda image, label: image)
    dataset = dataset.cache()
    return finalize(
        dataset, global_batch_size, shuffle_buffer=shuffle_buffer, seed=seed, strategy=strategy, repeat=repeat
    )
