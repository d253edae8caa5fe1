"""Tests for keras_sagan.data.mnist: IDX files the tests write, the 28->32 pad, channels, and the one-line errors."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
from cli_checks import cli_error
from idx_files import write_idx, write_split

from keras_sagan import cli
from keras_sagan.data import DatasetNotFoundError, DataSpec, load_dataset
from keras_sagan.data import mnist as mnist_lib
from keras_sagan.errors import UsageError


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """A tiny Fashion-MNIST: 64 train and 32 test images with labels 0..9, the train files gzipped, the test raw."""
    folder = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count, compress in (("train", 64, True), ("test", 32, False)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_split(folder, split, images, labels, compress)
        arrays[split] = (images, labels)
    return str(folder), arrays


def test_reads_gzipped_and_raw_idx_files_exactly(idx_dir):
    folder, arrays = idx_dir
    for split in ("train", "test"):
        images, labels = mnist_lib.load_mnist_arrays("fashion_mnist", split, data_dir=folder)
        np.testing.assert_array_equal(images, arrays[split][0])
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_pad_to_32_is_exact_and_black():
    image = np.arange(28 * 28, dtype=np.int64).reshape(28, 28) % 256
    out = mnist_lib.mnist_to_model(image.astype(np.uint8), 32).numpy()
    assert out.shape == (32, 32, 1)
    np.testing.assert_allclose(out[2:30, 2:30, 0], image / 127.5 - 1.0, atol=1e-6)  # the crop back is the original
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[..., 0][border] == -1.0)  # the pad is the datasets' black background


def test_other_sizes_resize_the_padded_image_and_channels_3_tiles():
    image = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    padded = np.pad(image, 2).astype(np.float32)[None, ..., None] / 127.5 - 1.0
    expected = tf.image.resize(padded, (64, 64), method="bilinear", antialias=True).numpy()[0]
    out = mnist_lib.mnist_to_model(image, 64, channels=3).numpy()
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(out, np.repeat(np.clip(expected, -1, 1), 3, axis=-1), atol=1e-6)


def test_load_dataset_yields_grey_batches_and_labels(idx_dir):
    folder, arrays = idx_dir
    batch = next(iter(load_dataset("fashion_mnist", image_size=32, global_batch_size=16, data_dir=folder, seed=0)))
    assert batch.shape == (16, 32, 32, 1)
    ordered = mnist_lib.load_mnist(
        "fashion_mnist", 32, 64, data_dir=folder, repeat=False, shuffle_buffer=0, labels=True
    )
    images, labels = next(iter(ordered))
    np.testing.assert_array_equal(labels.numpy(), arrays["train"][1])
    np.testing.assert_allclose(images.numpy()[:, 2:30, 2:30, 0], arrays["train"][0] / 127.5 - 1.0, atol=1e-6)


def test_mnist_reads_keras_npz_in_data_dir(tmp_path):
    x = np.full((3, 28, 28), 7, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(3), x_test=x[:1], y_test=np.arange(1))
    images, labels = mnist_lib.load_mnist_arrays("mnist", "test", data_dir=str(tmp_path))
    assert images.shape == (1, 28, 28) and labels.tolist() == [0]


def test_missing_data_is_one_line_with_paths_and_the_install_route(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_lib.load_mnist_arrays("fashion_mnist", "train", data_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path) in message and "apt-get install dataset-fashion-mnist" in message


def test_truncated_or_foreign_file_is_one_line(tmp_path):
    images, labels = (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8))
    write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), labels)
    write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), images)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "rb") as f:
        data = f.read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(data[:-5])
    with pytest.raises(DatasetNotFoundError, match="header .* needs 3136"):
        mnist_lib.load_mnist_arrays("fashion_mnist", "test", data_dir=str(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"PNG not idx"))
    with pytest.raises(DatasetNotFoundError, match="not an IDX file"):
        mnist_lib.load_mnist_arrays("fashion_mnist", "test", data_dir=str(tmp_path))


def test_channels_the_data_does_not_have_are_refused(idx_dir):
    folder, _ = idx_dir
    with pytest.raises(UsageError, match=r"must be 1 for dataset .fashion_mnist.*received: channels=3"):
        DataSpec("fashion_mnist", data_dir=folder).load(image_size=32, global_batch_size=8, seed=0, channels=3)
    with pytest.raises(UsageError, match=r"3 for dataset 'celeba'"):
        DataSpec("celeba").load(image_size=32, global_batch_size=8, seed=0, channels=1)


def test_demo_and_folders_can_load_grey(tmp_path):
    batch = next(iter(load_dataset("demo", image_size=32, global_batch_size=20, channels=1, shuffle_buffer=0)))
    rgb = next(iter(load_dataset("demo", image_size=32, global_batch_size=20, channels=3, shuffle_buffer=0)))
    assert batch.shape == (20, 32, 32, 1)
    np.testing.assert_allclose(batch.numpy()[..., 0], rgb.numpy()[..., 0], atol=1e-6)  # grey faces, tiled or not


def test_train_cli_refuses_a_channel_count_the_dataset_lacks(capsys, idx_dir):
    folder, _ = idx_dir
    err = cli_error(capsys, ["train", "--dataset=fashion_mnist", f"--data_dir={folder}", "--channels=3", "--steps=1"])
    assert "channels" in err and "fashion_mnist" in err


def test_train_config_defaults_to_the_datasets_channels(idx_dir):
    from keras_sagan.training.config import TrainConfig

    folder, _ = idx_dir
    assert TrainConfig(dataset="fashion_mnist", data_dir=folder).model_overrides()["channels"] == 1
    assert TrainConfig(dataset="demo").model_overrides()["channels"] == 3
    assert os.path.isdir(folder)


def test_data_dir_and_download_apply_to_the_mnist_family_only():
    with pytest.raises(UsageError, match="applies only to"):
        DataSpec("demo", data_dir="/x")
    assert DataSpec("mnist", data_dir="/x", download=True).describe() == {"dataset": "mnist", "data_dir": "/x"}
    assert cli.EXIT_ERROR == 2
