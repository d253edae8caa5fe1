"""Tests for keras_sagan.data.demo (offline LFW faces) and the load_dataset dispatcher."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

from keras_sagan.data import DATASETS, demo_num_examples, load_dataset, load_demo


def _faces_in_order(**kwargs):
    """All 100 demo images at their native 25x25, unshuffled, as one array."""
    dataset = load_demo(image_size=25, global_batch_size=100, shuffle_buffer=0, repeat=False, **kwargs)
    return next(iter(dataset)).numpy()


def test_loads_offline_with_expected_shape_and_range():
    batch = next(iter(load_demo(seed=0))).numpy()
    assert batch.shape == (20, 32, 32, 3) and batch.dtype == np.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    assert batch.std() > 0.1  # real images, not a constant


def test_has_the_100_faces():
    assert demo_num_examples() == 100
    one_epoch = load_demo(image_size=16, global_batch_size=1, repeat=False)
    assert sum(1 for _ in one_epoch) == 100


def test_images_are_the_first_100_of_lfw_subset_in_rgb():
    faces = skimage.data.lfw_subset()[:100].astype(np.float32) * 2 - 1
    np.testing.assert_allclose(_faces_in_order(), np.repeat(faces[..., None], 3, -1), atol=1e-5)


def test_image_size_and_batch_options():
    batch = next(iter(load_demo(image_size=64, global_batch_size=8))).numpy()
    assert batch.shape == (8, 64, 64, 3)
    batches = list(load_demo(global_batch_size=30, repeat=False))
    assert len(batches) == 3  # 100 // 30, remainder dropped


def test_repeat_option():
    assert len(list(load_demo(global_batch_size=50, repeat=False))) == 2
    assert len(list(load_demo(global_batch_size=50, repeat=True).take(5))) == 5


def test_seed_and_shuffle_buffer():
    def first_batch(**kwargs):
        return next(iter(load_demo(image_size=8, **kwargs))).numpy()

    a, b, c = first_batch(seed=1), first_batch(seed=1), first_batch(seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    in_order = first_batch(shuffle_buffer=0, seed=1)
    np.testing.assert_array_equal(in_order, first_batch(shuffle_buffer=0, seed=2))
    assert not np.array_equal(in_order, a)


def test_flip_mirrors_some_images_differently_each_epoch():
    plain = _faces_in_order()
    np.testing.assert_array_equal(_faces_in_order(seed=0), plain)  # no flip by default

    def flips(dataset):
        flipped = []
        for batch in dataset:
            batch = batch.numpy()
            mirrored = np.all(batch == plain[:, :, ::-1], axis=(1, 2, 3))
            assert np.all(mirrored | np.all(batch == plain, axis=(1, 2, 3)))
            flipped.append(mirrored)
        return np.concatenate(flipped)

    def two_epochs(seed):
        dataset = load_demo(image_size=25, global_batch_size=100, shuffle_buffer=0, seed=seed, flip=True)
        return flips(dataset.take(2))

    first = two_epochs(seed=7)
    assert 20 < first[:100].sum() < 80  # about half flipped
    assert not np.array_equal(first[:100], first[100:])  # new flips each epoch
    np.testing.assert_array_equal(first, two_epochs(seed=7))


def test_strategy_divisibility():
    class FakeStrategy:
        num_replicas_in_sync = 3

    with pytest.raises(ValueError, match="global batch size 20 does not divide across 3"):
        load_demo(strategy=FakeStrategy())


def test_load_dataset_dispatches(tmp_path):
    assert DATASETS == ("celeba", "folder", "demo", "fashion_mnist", "mnist")
    batch = next(iter(load_dataset("demo", image_size=16, global_batch_size=4)))
    assert batch.shape == (4, 16, 16, 3)
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    batch = next(iter(load_dataset("folder", path=tmp_path, image_size=8, global_batch_size=2)))
    assert batch.shape == (2, 8, 8, 3)


def test_load_dataset_rejects_unknown_name():
    with pytest.raises(
        ValueError,
        match=r"unknown dataset 'cifar10'; expected one of celeba, folder, demo, fashion_mnist, mnist",
    ):
        load_dataset("cifar10")
