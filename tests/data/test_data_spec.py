"""DataSpec: up-front validation in one line, the loader each dataset gets, and its provenance."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_sagan import data as data_lib
from keras_sagan.data import DATASETS, DatasetNotFoundError, DataSpec
from keras_sagan.errors import UsageError


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"name": "cifar10"},
            "`name` must be one of ('celeba', 'folder', 'demo', 'fashion_mnist', 'mnist'); received: name='cifar10'",
        ),
        (
            {"name": "folder"},
            "`image_folder` must be a folder of images when name='folder'; received: image_folder=None",
        ),
        (
            {"name": "demo", "image_folder": "faces"},
            "`image_folder` applies only to name='folder'; received: name='demo', image_folder='faces'",
        ),
        (
            {"name": "celeba", "image_folder": "faces"},
            "`image_folder` applies only to name='folder'; received: name='celeba', image_folder='faces'",
        ),
        (
            {"name": "folder", "image_folder": "faces", "data_dir": "tfds"},
            "`data_dir` applies only to name='celeba' or name='fashion_mnist' or name='mnist'; "
            "received: name='folder', data_dir='tfds'",
        ),
        (
            {"name": "demo", "download": True},
            "`download` applies only to name='celeba' or name='fashion_mnist' or name='mnist'; "
            "received: name='demo', download=True",
        ),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(kwargs, message):
    with pytest.raises(UsageError) as info:
        DataSpec(**kwargs)
    assert str(info.value) == message


def test_errors_spell_the_callers_flags():
    with pytest.raises(UsageError) as info:
        DataSpec.from_arguments(
            "demo", image_folder="faces", names={"name": "--data", "image_folder": "--image_folder"}
        )
    assert (
        str(info.value)
        == "`--image_folder` applies only to --data='folder'; received: --data='demo', --image_folder='faces'"
    )
    assert DataSpec.from_arguments("celeba", "tfds", None, True) == DataSpec("celeba", "tfds", download=True)


def test_a_spec_is_frozen_hashable_and_takes_path_likes(tmp_path):
    spec = DataSpec("folder", image_folder=tmp_path)
    assert spec.image_folder == os.fspath(tmp_path) and isinstance(spec.image_folder, str)
    assert {spec, DataSpec("folder", image_folder=str(tmp_path))} == {spec}
    with pytest.raises(AttributeError):
        spec.name = "demo"
    assert DataSpec() == DataSpec("demo", None, None, False)


def test_load_passes_each_dataset_its_arguments(monkeypatch):
    calls = []
    monkeypatch.setattr(data_lib, "load_dataset", lambda name, **kwargs: calls.append((name, kwargs)) or name)
    common = {"image_size": 16, "global_batch_size": 4, "seed": 3, "repeat": False}
    assert DataSpec("demo").load(16, 4, 3, repeat=False) == "demo"
    DataSpec("celeba", "tfds", download=True).load(16, 4, 3, repeat=False, shuffle_buffer=0)
    DataSpec("folder", image_folder="faces").load(16, 4, 3, repeat=False, channels=1)
    DataSpec("fashion_mnist", "idx").load(16, 4, 3, repeat=False)
    DataSpec("mnist", download=True).load(16, 4, 3, repeat=False)
    assert calls == [
        ("demo", {**common, "channels": 3}),  # each dataset's default channel count is passed on
        ("celeba", {**common, "data_dir": "tfds", "download": True, "shuffle_buffer": 0}),  # RGB only: no argument
        ("folder", {**common, "path": "faces", "channels": 1}),
        ("fashion_mnist", {**common, "data_dir": "idx", "download": False, "channels": 1}),
        ("mnist", {**common, "data_dir": None, "download": True, "channels": 1}),
    ]
    assert {name for name, _ in calls} == set(DATASETS)


def test_load_reads_the_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    batches = list(DataSpec("folder", image_folder=str(tmp_path)).load(8, 3, seed=0, repeat=False))
    assert [tuple(b.shape) for b in batches] == [(3, 8, 8, 3)] * 2
    demo = next(iter(DataSpec().load(8, 5, seed=0)))
    assert tuple(demo.shape) == (5, 8, 8, 3) and -1.0 <= float(np.min(demo)) <= float(np.max(demo)) <= 1.0


def test_celeba_without_data_fails_at_load_not_before(tmp_path):
    spec = DataSpec("celeba", data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="CelebA is not prepared"):
        spec.load(16, 4, 0, repeat=False)


def test_describe_is_json_provenance_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DataSpec().describe() == {"dataset": "demo"}
    assert DataSpec("folder", image_folder="faces").describe() == {
        "dataset": "folder",
        "image_folder": os.path.join(str(tmp_path), "faces"),
    }
    celeba = DataSpec("celeba", "tfds", download=True).describe()
    assert celeba == {"dataset": "celeba", "tfds": "celeb_a:2.1.0", "data_dir": os.path.join(str(tmp_path), "tfds")}
    assert DataSpec("celeba").describe() == {"dataset": "celeba", "tfds": "celeb_a:2.1.0"}
    assert json.loads(json.dumps(celeba)) == celeba
