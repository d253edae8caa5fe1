"""Tests for keras_sagan.data.folder on images written here with PIL."""

import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sagan.data import DatasetNotFoundError, list_images, load_image_folder


def _values(dataset):
    """The mean pixel of every example, as 0..255 levels, in dataset order."""
    return [round((float(image.mean()) + 1) * 127.5) for batch in dataset.as_numpy_iterator() for image in batch]


def _colour(like, *rgb):
    """An image shaped like `like` filled with the [-1, 1] value of an RGB colour."""
    return np.broadcast_to(np.array(rgb) / 127.5 - 1, like.shape)


@pytest.fixture
def mixed_folder(tmp_path):
    """Four good images in various formats, one corrupt .jpg and one text file."""
    root = tmp_path / "images"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.new("L", (20, 20), 100).save(root / "gray.png")
    Image.new("RGB", (37, 53), (200, 60, 20)).save(root / "rgb.jpg", quality=95)
    Image.new("RGBA", (30, 20), (10, 200, 30, 0)).save(root / "rgba.PNG")
    Image.new("RGB", (64, 48), (90, 90, 90)).save(root / "sub" / "deeper" / "face.jpeg")
    (root / "corrupt.jpg").write_bytes(np.random.RandomState(0).bytes(500))
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def numbered_folder(tmp_path):
    """Twelve 8x8 gray PNGs whose constant level (10, 20, ...) identifies them."""
    root = tmp_path / "numbered"
    root.mkdir()
    for i in range(12):
        Image.new("L", (8, 8), 10 * (i + 1)).save(root / f"{i:02d}.png")
    return root


def test_list_images_is_recursive_sorted_and_case_insensitive(mixed_folder):
    names = [os.path.relpath(f, mixed_folder) for f in list_images(mixed_folder)]
    assert names == [
        "corrupt.jpg",
        "gray.png",
        "rgb.jpg",
        "rgba.PNG",
        "sub/deeper/face.jpeg",
    ]


def test_mixed_folder_uses_every_good_image_and_warns_once(mixed_folder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_image_folder(
            mixed_folder,
            image_size=16,
            global_batch_size=1,
            shuffle_buffer=0,
            repeat=False,
        )
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1
    assert "skipped 1 unreadable" in messages[0] and "corrupt.jpg" in messages[0]

    images = [batch[0] for batch in dataset.as_numpy_iterator()]
    assert len(images) == 4  # gray.png, rgb.jpg, rgba.PNG, sub/deeper/face.jpeg
    for image in images:
        assert image.shape == (16, 16, 3) and image.dtype == np.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
    gray, rgb, rgba, nested = images
    np.testing.assert_allclose(gray, 100 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(rgba, _colour(rgba, 10, 200, 30), atol=1e-6)
    np.testing.assert_allclose(rgb, _colour(rgb, 200, 60, 20), atol=0.05)  # JPEG
    np.testing.assert_allclose(nested, 90 / 127.5 - 1, atol=0.05)


def test_warning_names_at_most_three_files(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    for i in range(5):
        (tmp_path / f"bad{i}.png").write_bytes(b"nope")
    with pytest.warns(UserWarning, match=r"skipped 5 unreadable.*bad2\.png and 2 more") as caught:
        load_image_folder(tmp_path, global_batch_size=1)
    assert "bad3.png" not in str(caught[0].message)


def test_empty_missing_or_unreadable_folder_raises(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        load_image_folder(tmp_path)
    missing = tmp_path / "missing"
    with pytest.raises(DatasetNotFoundError, match=str(missing)):
        load_image_folder(missing)
    (tmp_path / "broken.png").write_bytes(b"nope")
    with (
        pytest.warns(UserWarning, match="broken.png"),
        pytest.raises(DatasetNotFoundError, match="1 unreadable"),
    ):
        load_image_folder(tmp_path)


def test_crop_option(tmp_path):
    image = np.full((40, 40, 3), 0, np.uint8)
    image[15:25, 15:25] = 255
    Image.fromarray(image).save(tmp_path / "centre.png")
    kwargs = {"image_size": 4, "global_batch_size": 1, "repeat": False}
    cropped = next(iter(load_image_folder(tmp_path, crop=10, **kwargs))).numpy()
    np.testing.assert_allclose(cropped, 1.0, atol=1e-6)
    whole = next(iter(load_image_folder(tmp_path, **kwargs))).numpy()
    assert whole.min() < 0.0


def test_global_batch_drop_remainder_and_repeat(numbered_folder):
    once = list(load_image_folder(numbered_folder, image_size=8, global_batch_size=5, repeat=False))
    assert [tuple(b.shape) for b in once] == [(5, 8, 8, 3)] * 2
    repeated = load_image_folder(numbered_folder, image_size=8, global_batch_size=5, repeat=True)
    assert len(list(repeated.take(7))) == 7


def test_shuffle_buffer_and_seed(numbered_folder):
    def order(**kwargs):
        dataset = load_image_folder(numbered_folder, image_size=8, global_batch_size=12, repeat=False, **kwargs)
        return _values(dataset)

    sorted_order = [10 * (i + 1) for i in range(12)]
    assert order(shuffle_buffer=0) == sorted_order
    a, b, c = order(seed=5), order(seed=5), order(seed=6)
    assert a == b and a != c and a != sorted_order
    assert sorted(a) == sorted_order


def test_strategy_divisibility(numbered_folder):
    class FakeStrategy:
        num_replicas_in_sync = 3

    with pytest.raises(ValueError, match="use a multiple of 3"):
        load_image_folder(numbered_folder, global_batch_size=4, strategy=FakeStrategy())


@pytest.mark.parametrize("cache", [True, False])
def test_cache_serves_later_epochs_without_the_files(numbered_folder, cache):
    dataset = load_image_folder(
        numbered_folder,
        image_size=8,
        global_batch_size=4,
        shuffle_buffer=0,
        cache=cache,
    )
    iterator = iter(dataset)
    first_epoch = [next(iterator) for _ in range(3)]
    assert len(first_epoch) == 3
    shutil.rmtree(numbered_folder)
    if cache:
        later = [next(iterator) for _ in range(30)]
        assert _values(tf.data.Dataset.from_tensor_slices(later))[:12] == [10 * (i + 1) for i in range(12)]
    else:
        with pytest.raises(tf.errors.NotFoundError):
            for _ in range(30):
                next(iterator)
