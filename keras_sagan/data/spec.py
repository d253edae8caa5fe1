"""`DataSpec`: the one place that turns dataset arguments (demo / celeba / folder) into a loader call.

Training, the real statistics of evaluation and `keras-sagan evaluate` all describe their images
with a `DataSpec` and build the `tf.data.Dataset` through `DataSpec.load`, so the rules about
which argument goes with which dataset are written once, here, and checked up front.

Example:

```python
spec = DataSpec("folder", image_folder="img_align_celeba")
ds = spec.load(image_size=64, global_batch_size=64, seed=0)
spec.describe()  # {"dataset": "folder", "image_folder": "/abs/img_align_celeba"}
```
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from keras_sagan.errors import UsageError, bad_value

# `DATASETS` and `load_dataset` live in the package's __init__, which imports this module.
_DOWNLOADABLE = ("celeba", "fashion_mnist", "mnist")


def _datasets() -> tuple[str, ...]:
    from keras_sagan.data import DATASETS

    return DATASETS


def check_data_arguments(
    name: str,
    data_dir: Any = None,
    image_folder: Any = None,
    download: bool = False,
    names: Mapping[str, str] | None = None,
) -> None:
    """Raises a one-line `UsageError` when the dataset arguments do not fit together.

    Args:
        name: str. One of `keras_sagan.data.DATASETS`.
        data_dir: str or None. TFDS directory with `"celeba"`; the folder of IDX files with
            `"fashion_mnist"` and `"mnist"`.
        image_folder: str or None. Folder of images; required with `"folder"` and only with it.
        download: bool. Allow a download (TFDS for `"celeba"`, `keras.datasets` for the MNIST
            family); not with `"folder"` or `"demo"`.
        names: mapping or None. How the caller spells each argument in messages, e.g.
            `{"name": "--data"}` on the command line or `{"name": "dataset"}` in `TrainConfig`.
            Defaults to the argument names.
    """
    spell = {"name": "name", "data_dir": "data_dir", "image_folder": "image_folder", "download": "download"}
    spell.update(names or {})
    datasets = _datasets()
    if name not in datasets:
        raise UsageError(bad_value(spell["name"], name, f"one of {datasets}"))
    if name == "folder" and not image_folder:
        raise UsageError(
            f"`{spell['image_folder']}` must be a folder of images when {spell['name']}='folder'; "
            f"received: {spell['image_folder']}={image_folder!r}"
        )
    for argument, value, given, wanted in (
        ("image_folder", image_folder, image_folder is not None, ("folder",)),
        ("data_dir", data_dir, data_dir is not None, _DOWNLOADABLE),
        ("download", download, bool(download), _DOWNLOADABLE),
    ):
        if given and name not in wanted:
            wanted_text = " or ".join(f"{spell['name']}={w!r}" for w in wanted)
            raise UsageError(
                f"`{spell[argument]}` applies only to {wanted_text}; "
                f"received: {spell['name']}={name!r}, {spell[argument]}={value!r}"
            )


def check_channels(name: str, channels: int | None, spelled: str = "channels") -> int:
    """Returns the channel count to load `name` with: `channels`, or the dataset's default when `None`.

    Raises:
        UsageError: one line, when the dataset cannot give that many channels (a grey dataset
            is never tiled to fake RGB, and CelebA is never made grey).
    """
    from keras_sagan.data import DATASET_CHANNELS

    accepted = DATASET_CHANNELS[name]
    if channels is None:
        return accepted[0]
    if channels not in accepted:
        raise UsageError(
            bad_value(spelled, channels, f"{' or '.join(map(str, accepted))} for dataset {name!r} (its images)")
        )
    return channels


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which real images to read: a dataset name and the arguments that go with it.

    Args:
        name: str. `"demo"` (the 100 LFW faces bundled with scikit-image), `"celeba"` (TFDS),
            `"folder"` (`image_folder`), `"fashion_mnist"` or `"mnist"` (`keras_sagan.data.mnist`).
            Defaults to `"demo"`.
        data_dir: str or None. TFDS data directory holding `celeb_a`, or the folder of the MNIST
            family's IDX files. Defaults to `None`.
        image_folder: str or None. Folder of images (folder only, and required there). Defaults to `None`.
        download: bool. Let TFDS or `keras.datasets` download missing data (celeba and the MNIST
            family). Defaults to `False`.

    Raises:
        UsageError: one line, when the arguments do not fit together (see `check_data_arguments`).
    """

    name: str = "demo"
    data_dir: str | None = None
    image_folder: str | None = None
    download: bool = False

    def __post_init__(self) -> None:
        for field in ("data_dir", "image_folder"):
            value = getattr(self, field)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, field, os.fspath(value))
        check_data_arguments(self.name, self.data_dir, self.image_folder, self.download)

    @classmethod
    def from_arguments(
        cls,
        name: str,
        data_dir: Any = None,
        image_folder: Any = None,
        download: bool = False,
        *,
        names: Mapping[str, str] | None = None,
    ) -> DataSpec:
        """Like the constructor, with errors that spell the arguments as the caller's flags do."""
        check_data_arguments(name, data_dir, image_folder, download, names=names)
        return cls(name, data_dir, image_folder, download)

    def load(
        self,
        image_size: int,
        global_batch_size: int,
        seed: int | None,
        repeat: bool = True,
        **kwargs: Any,
    ) -> tf.data.Dataset:
        """The batched dataset: `keras_sagan.data.load_dataset` with this spec's arguments.

        Args:
            image_size: int. Side of the square images.
            global_batch_size: int. Images per batch (over all replicas).
            seed: int or None. Shuffle seed.
            repeat: bool. Repeat forever (training) or make one pass (statistics). Defaults to `True`.
            **kwargs: passed to the loader as they are (`strategy`, `shuffle_buffer`, ...);
                `channels` is checked against the dataset first (`check_channels`).
        """
        from keras_sagan.data import load_dataset

        if self.name in _DOWNLOADABLE:
            kwargs.update(data_dir=self.data_dir, download=self.download)
        elif self.name == "folder":
            kwargs.update(path=self.image_folder)
        channels = kwargs.pop("channels", None)
        channels = check_channels(self.name, channels)
        if self.name != "celeba":  # CelebA is RGB only; check_channels refused anything else
            kwargs["channels"] = channels
        return load_dataset(
            self.name, image_size=image_size, global_batch_size=global_batch_size, seed=seed, repeat=repeat, **kwargs
        )

    def describe(self) -> dict[str, str]:
        """Where the images come from, as JSON-able provenance (paths made absolute)."""
        description = {"dataset": self.name}
        if self.name == "celeba":
            from keras_sagan.data.celeba import CELEBA_TFDS_NAME

            description["tfds"] = CELEBA_TFDS_NAME
            if self.data_dir is not None:
                description["data_dir"] = os.path.abspath(self.data_dir)
        elif self.name == "folder":
            description["image_folder"] = os.path.abspath(self.image_folder)
        elif self.name in ("fashion_mnist", "mnist"):
            if self.data_dir is not None:
                description["data_dir"] = os.path.abspath(self.data_dir)
        return description
