"""Tests for keras_sagan.data.celeba with TFDS mocked: nothing is downloaded."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_sagan.data import DatasetNotFoundError, load_celeba

HEIGHT, WIDTH = 218, 178


def _fake_as_dataset(images_for_split, calls=None):
    """A replacement for the builder's `_as_dataset` that serves given images and records calls."""

    def as_dataset(self, split, **kwargs):
        if calls is not None:
            calls.append({"split": str(split), **kwargs})
        images = images_for_split(str(split))
        return tf.data.Dataset.from_tensor_slices({"image": images})

    return as_dataset


def _constant_faces(values):
    return np.stack([np.full((HEIGHT, WIDTH, 3), v, np.uint8) for v in values])


def test_mock_data_shapes_dtype_range_and_drop_remainder(tmp_path):
    with tfds.testing.mock_data(num_examples=10):
        dataset = load_celeba(image_size=32, global_batch_size=4, data_dir=tmp_path, seed=0, repeat=False)
        batches = [b.numpy() for b in dataset]
    assert len(batches) == 2  # 10 examples -> 2 full batches of 4, 2 dropped
    for batch in batches:
        assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.float32
        assert batch.min() >= -1.0 and batch.max() <= 1.0


def test_default_crop_keeps_the_central_160_square(tmp_path):
    face = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    top, left = (
        (HEIGHT - 160) // 2,
        (WIDTH - 160) // 2,
    )  # 29, 9: torchvision's CenterCrop(160)
    face[top : top + 160, left : left + 160] = 255
    fake = _fake_as_dataset(lambda split: face[np.newaxis])
    kwargs = {
        "global_batch_size": 1,
        "data_dir": tmp_path,
        "repeat": False,
        "shuffle_buffer": 0,
    }
    with tfds.testing.mock_data(as_dataset_fn=fake):
        cropped = next(iter(load_celeba(**kwargs))).numpy()
        whole = next(iter(load_celeba(crop=None, **kwargs))).numpy()
    assert cropped.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(cropped, 1.0, atol=1e-6)
    assert whole.min() < 0.0  # the 178x178 square includes the black rows


def test_split_is_passed_to_tfds(tmp_path):
    fake = _fake_as_dataset(lambda split: _constant_faces([255 if split == "test" else 0]))
    kwargs = {"global_batch_size": 1, "data_dir": tmp_path, "repeat": False}
    with tfds.testing.mock_data(as_dataset_fn=fake):
        test = next(iter(load_celeba(split="test", **kwargs))).numpy()
        train = next(iter(load_celeba(**kwargs))).numpy()
    np.testing.assert_allclose(test, 1.0, atol=1e-6)
    np.testing.assert_allclose(train, -1.0, atol=1e-6)


def test_shuffle_buffer_and_seed(tmp_path):
    values = [20 * i for i in range(10)]
    calls = []
    fake = _fake_as_dataset(lambda split: _constant_faces(values), calls)

    def order(**kwargs):
        dataset = load_celeba(
            image_size=8,
            global_batch_size=10,
            data_dir=tmp_path,
            repeat=False,
            **kwargs,
        )
        return [round(float(m + 1) * 127.5) for m in next(iter(dataset)).numpy().mean((1, 2, 3))]

    with tfds.testing.mock_data(as_dataset_fn=fake):
        in_order = order(shuffle_buffer=0)
        a, b, c = order(seed=3), order(seed=3), order(seed=4)
    assert in_order == values
    assert a == b and a != c and a != values
    assert calls[0]["shuffle_files"] is False
    assert calls[1]["shuffle_files"] is True
    assert calls[1]["read_config"].shuffle_seed == 3


@pytest.mark.parametrize("cache", [True, False])
def test_cache_reads_tfds_once(tmp_path, cache):
    generated = []

    def as_dataset(self, split, **kwargs):
        def generate():
            generated.append(1)
            for v in (0, 255):
                yield {"image": np.full((HEIGHT, WIDTH, 3), v, np.uint8)}

        signature = {"image": tf.TensorSpec((HEIGHT, WIDTH, 3), tf.uint8)}
        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        dataset = load_celeba(
            image_size=8,
            global_batch_size=2,
            data_dir=tmp_path,
            cache=cache,
            shuffle_buffer=0,
        )
        assert len(list(dataset.take(4))) == 4
    assert (len(generated) == 1) if cache else (len(generated) >= 4)


def test_download_false_on_empty_data_dir_raises(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not prepared") as info:
        load_celeba(data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message and "\n" not in message
    assert "load_image_folder" in message
    assert isinstance(info.value, ValueError)


def test_download_failure_is_wrapped(tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(DatasetNotFoundError, match="ConnectionError: network is unreachable") as info:
        load_celeba(data_dir=tmp_path, download=True)
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_bad_batch_fails_before_touching_tfds(tmp_path):
    class FakeStrategy:
        num_replicas_in_sync = 4

    with pytest.raises(ValueError, match="global batch size 10 does not divide across 4"):
        load_celeba(global_batch_size=10, data_dir=tmp_path, strategy=FakeStrategy())
    assert not any(tmp_path.iterdir())
