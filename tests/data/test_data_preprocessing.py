"""Tests for keras_sagan.data.preprocessing: exact numbers, the inverse, and finalize's options."""

import os
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sagan.data import finalize, preprocess_image, to_uint8, validate_global_batch


def _ids(dataset):
    """Flattens a dataset of batches of scalars into a list of ints."""
    return [int(x) for batch in dataset for x in np.ravel(batch.numpy())]


@pytest.mark.parametrize("value, expected", [(255, 1.0), (0, -1.0), (51, 51 / 127.5 - 1)])
def test_constant_uint8_image_maps_to_expected_value(value, expected):
    image = np.full((30, 20, 3), value, np.uint8)
    out = preprocess_image(image, image_size=8).numpy()
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_float_image_is_read_as_zero_to_one():
    image = np.full((10, 10, 1), 0.25, np.float32)
    np.testing.assert_allclose(preprocess_image(image, 4).numpy(), -0.5, atol=1e-6)


def test_crop_keeps_only_the_centre_colour():
    # 20 rows x 30 columns of 50, with a centred 10x10 square of 200.
    image = np.full((20, 30, 3), 50, np.uint8)
    image[5:15, 10:20] = 200
    cropped = preprocess_image(image, image_size=4, crop=10).numpy()
    np.testing.assert_allclose(cropped, 200 / 127.5 - 1, atol=1e-6)
    # Without crop, the largest central square (20x20, columns 5..24) keeps a 50 border.
    uncropped = preprocess_image(image, image_size=20).numpy()
    expected = image[:, 5:25].astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(uncropped, expected, atol=1e-6)


def test_crop_larger_than_image_is_clamped():
    image = np.random.RandomState(0).randint(0, 256, (13, 17, 3)).astype(np.uint8)
    out = preprocess_image(image, image_size=13, crop=100).numpy()
    np.testing.assert_allclose(out, image[:, 2:15] / 127.5 - 1, atol=1e-6)


def test_resize_is_antialiased_like_pil():
    image = np.random.RandomState(1).randint(0, 256, (160, 160, 3)).astype(np.uint8)
    ours = (preprocess_image(image, 64).numpy() + 1) * 127.5
    pil = np.asarray(Image.fromarray(image).resize((64, 64), Image.BILINEAR), np.float64)
    # Plain bilinear (no antialias) is ~30 levels off on this noise; antialiased is under 1.
    assert np.abs(ours - pil).mean() < 1.0


def test_grayscale_is_tiled_and_alpha_dropped():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 10
    out = preprocess_image(gray, 4).numpy()
    np.testing.assert_allclose(out, np.repeat(gray, 3, axis=-1) / 127.5 - 1, atol=1e-6)
    rgb = np.random.RandomState(2).randint(0, 256, (4, 4, 3)).astype(np.uint8)
    rgba = np.concatenate([rgb, np.zeros((4, 4, 1), np.uint8)], axis=-1)
    np.testing.assert_allclose(preprocess_image(rgba, 4), preprocess_image(rgb, 4), atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_unknown_channel_count_at_trace_time(channels):
    fn = tf.function(
        lambda x: preprocess_image(x, 6),
        input_signature=[tf.TensorSpec([None, None, None], tf.uint8)],
    )
    image = np.full((9, 7, channels), 255, np.uint8)
    out = fn(image).numpy()
    assert out.shape == (6, 6, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image": np.zeros((4, 4, 3), np.uint8), "image_size": 0}, "image_size"),
        ({"image": np.zeros((4, 4, 3), np.uint8), "image_size": 4, "crop": 0}, "crop"),
        ({"image": np.zeros((4, 4, 5), np.uint8), "image_size": 4}, "channels"),
        ({"image": np.zeros((2, 4, 4, 3), np.uint8), "image_size": 4}, "shape"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess_image(**kwargs)


def test_to_uint8_inverts_every_level_exactly():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    scaled = preprocess_image(levels, 16).numpy()[..., :1]
    np.testing.assert_array_equal(to_uint8(scaled).numpy(), levels)
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 1.5])).numpy(), [0, 255])
    assert to_uint8(np.zeros((2, 2))).dtype == tf.uint8
    # Usable in a tf.data map under the TensorFlow backend.
    mapped = tf.data.Dataset.from_tensor_slices(scaled[np.newaxis]).map(to_uint8)
    np.testing.assert_array_equal(next(iter(mapped)).numpy(), levels)


def test_validate_global_batch():
    validate_global_batch(8, 4)
    with pytest.raises(ValueError) as info:
        validate_global_batch(10, 4)
    assert str(info.value) == ("global batch size 10 does not divide across 4 replicas; use a multiple of 4")
    with pytest.raises(ValueError, match="global_batch_size must be a positive integer, got 0"):
        validate_global_batch(0)


def test_finalize_checks_strategy_replicas():
    fake_strategy = types.SimpleNamespace(num_replicas_in_sync=4)
    dataset = tf.data.Dataset.range(16)
    with pytest.raises(ValueError, match="does not divide across 4 replicas"):
        finalize(dataset, 10, strategy=fake_strategy)
    batch = next(iter(finalize(dataset, 8, strategy=fake_strategy)))
    assert batch.shape == (8,)


def test_finalize_drops_remainder_and_repeat_false_ends():
    batches = list(finalize(tf.data.Dataset.range(10), 4, shuffle_buffer=0, repeat=False))
    assert [b.shape[0] for b in batches] == [4, 4]
    assert _ids(batches) == list(range(8))


def test_finalize_preprocesses_before_the_cache():
    seen = []

    def record(x):
        seen.append(int(x))  # Runs per element (a py_function), so a second epoch read from the cache adds nothing.
        return x

    def preprocess(x):
        return tf.py_function(record, [x], tf.int64) * 3 + 1

    dataset = finalize(tf.data.Dataset.range(4), 2, shuffle_buffer=0, cache=True, repeat=True, preprocess=preprocess)
    batches = [b.numpy().tolist() for b in dataset.take(4)]
    assert batches == [[1, 4], [7, 10], [1, 4], [7, 10]]  # 3x + 1 of 0..3, twice.
    assert sorted(seen) == [0, 1, 2, 3]  # Once each (in any order: the map runs in parallel).


def test_finalize_repeat_true_runs_past_one_epoch():
    dataset = finalize(tf.data.Dataset.range(10), 4, shuffle_buffer=0, repeat=True)
    assert _ids(dataset.take(5)) == [i % 10 for i in range(20)]


def test_shuffle_buffer_bounds_how_far_an_element_can_move():
    in_order = finalize(tf.data.Dataset.range(50), 50, shuffle_buffer=0, repeat=False)
    assert _ids(in_order) == list(range(50))
    small = _ids(finalize(tf.data.Dataset.range(50), 50, shuffle_buffer=2, seed=0, repeat=False))
    assert small != list(range(50))
    # A buffer of 2 can emit element i + 1 at position i, never anything later.
    assert all(x <= i + 1 for i, x in enumerate(small))
    full = _ids(finalize(tf.data.Dataset.range(50), 50, shuffle_buffer=50, seed=0, repeat=False))
    assert any(x > i + 1 for i, x in enumerate(full))


def test_seed_gives_reproducible_order_and_new_order_each_epoch():
    def first_epochs(seed):
        dataset = finalize(tf.data.Dataset.range(20), 20, shuffle_buffer=20, seed=seed)
        return _ids(dataset.take(2))

    a, b, c = first_epochs(1), first_epochs(1), first_epochs(2)
    assert a == b
    assert a != c
    assert a[:20] != a[20:]  # reshuffle_each_iteration
    assert sorted(a[:20]) == list(range(20))


def test_seed_sets_deterministic_option():
    dataset = tf.data.Dataset.range(4)
    assert finalize(dataset, 2, seed=3).options().deterministic is True
    assert finalize(dataset, 2, seed=None).options().deterministic is not True


def _counting_dataset(counter):
    def generate():
        counter.append(1)
        yield from range(6)

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([], tf.int64))


@pytest.mark.parametrize("cache", [False, True, "file"])
def test_cache_reads_the_source_once(cache, tmp_path):
    counter = []
    cache_arg = str(tmp_path / "cache") if cache == "file" else cache
    dataset = finalize(_counting_dataset(counter), 6, shuffle_buffer=0, cache=cache_arg)
    assert _ids(dataset.take(3)) == list(range(6)) * 3
    if cache is False:
        assert len(counter) >= 3
    else:
        assert len(counter) == 1
    if cache == "file":
        assert any(name.startswith("cache") for name in os.listdir(tmp_path))


def test_finalize_rejects_negative_shuffle_buffer():
    with pytest.raises(ValueError, match="shuffle_buffer"):
        finalize(tf.data.Dataset.range(4), 2, shuffle_buffer=-1)
