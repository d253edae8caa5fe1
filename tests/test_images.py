"""keras_sagan.images against hand-computed NumPy values: uint8 conversion, grids, PNGs, upscaling, overlays."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sagan import images
from keras_sagan.errors import UsageError


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


# -- to_uint8 -----------------------------------------------------------------------------------


def test_every_uint8_level_round_trips():
    levels = np.arange(256)
    scaled = (levels / 127.5 - 1.0).astype(np.float32)  # The data pipeline's scaling.
    pixels = _numpy(images.to_uint8(scaled))
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, levels)


def test_to_uint8_rounds_and_clips_like_the_formula():
    x = np.array([-1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 2.0], np.float32)
    # By hand: 0 (clipped), 0, round(0.1275)=0, round(127.5)=128 (half to even), round(191.25)=191, 255, 255.
    np.testing.assert_array_equal(_numpy(images.to_uint8(x)), [0, 0, 0, 128, 191, 255, 255])
    noise = np.random.default_rng(0).uniform(-1.2, 1.2, (4, 8, 8, 3)).astype(np.float32)
    expected = np.clip(np.round((noise + np.float32(1.0)) * np.float32(127.5)), 0, 255).astype(np.uint8)
    result = _numpy(images.to_uint8(noise))
    assert result.shape == noise.shape
    np.testing.assert_array_equal(result, expected)


def test_to_uint8_runs_inside_a_tf_function_and_on_low_precision_input():
    x = np.array([-1.0, -0.5, 0.25, 1.0], np.float32)
    expected = [0, 64, 159, 255]  # round(63.75), round(159.375).
    traced = tf.function(images.to_uint8, input_signature=[tf.TensorSpec([None], tf.float32)])
    out = traced(tf.constant(x))
    assert out.dtype == tf.uint8
    np.testing.assert_array_equal(out.numpy(), expected)
    for dtype in (tf.float16, tf.bfloat16):  # All four values are exact in both.
        np.testing.assert_array_equal(_numpy(images.to_uint8(tf.constant(x, dtype))), expected)
    # Values whose level differs when (x + 1) * 127.5 is computed in the low precision itself: the
    # reference is the float64 formula on the (already rounded) low-precision input.
    tricky = np.array([-0.4921875, -0.86279296875], np.float32)
    for dtype in (tf.float16, tf.bfloat16):
        low = tf.constant(tricky, dtype)
        reference = np.clip(np.round((np.asarray(tf.cast(low, tf.float64)) + 1.0) * 127.5), 0, 255)
        np.testing.assert_array_equal(_numpy(images.to_uint8(low)), reference.astype(np.uint8), err_msg=str(dtype))


def test_data_and_callbacks_share_the_one_to_uint8():
    from keras_sagan import data
    from keras_sagan.data import preprocessing
    from keras_sagan.training import tensorboard

    assert data.to_uint8 is images.to_uint8 and preprocessing.to_uint8 is images.to_uint8
    assert tensorboard.to_uint8 is images.to_uint8


# -- grids --------------------------------------------------------------------------------------


def _tiles(*values, side=2, channels=3):
    return np.stack([np.full((side, side, channels), value, np.uint8) for value in values])


def test_make_grid_places_images_row_major_with_padding():
    grid = images.make_grid(_tiles(10, 20, 30), cols=2)
    # 2 x 2 cells of 2 pixels, 1 pixel of padding around and between: 2 * 3 + 1 = 7.
    expected = np.zeros((7, 7, 3), np.uint8)
    expected[1:3, 1:3], expected[1:3, 4:6], expected[4:6, 1:3] = 10, 20, 30  # The fourth cell stays black.
    np.testing.assert_array_equal(grid, expected)


def test_make_grid_shapes_follow_rows_cols_and_padding():
    assert images.make_grid(np.zeros((64, 4, 4, 3), np.uint8)).shape == (41, 41, 3)  # 8 x 8 by default.
    assert images.make_grid(np.zeros((5, 4, 4, 3), np.uint8)).shape == (11, 16, 3)  # cols ceil(sqrt 5) = 3, rows 2.
    assert images.make_grid(_tiles(1, 2, 3), rows=1).shape == (4, 10, 3)
    assert images.make_grid(_tiles(1, 2, 3), rows=3, cols=1).shape == (10, 4, 3)
    assert images.make_grid(_tiles(1, 2, 3, channels=1), cols=3).shape == (4, 10, 1)


@pytest.mark.parametrize("padding", [0, 2])
def test_make_grid_padding(padding):
    grid = images.make_grid(_tiles(7, 9), cols=2, padding=padding)
    expected = np.zeros((2 + 2 * padding, 4 + 3 * padding, 3), np.uint8)
    expected[padding : padding + 2, padding : padding + 2] = 7
    expected[padding : padding + 2, 2 + 2 * padding : 4 + 2 * padding] = 9
    np.testing.assert_array_equal(grid, expected)


def test_make_grid_accepts_a_backend_tensor():
    tiles = _tiles(10, 20, 30, 40)
    np.testing.assert_array_equal(images.make_grid(keras.ops.convert_to_tensor(tiles)), images.make_grid(tiles))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cols": 0}, r"^`cols` must be an int >= 1; received: cols=0$"),
        ({"cols": 1.5}, r"^`cols` must be an int >= 1; received: cols=1.5$"),
        ({"cols": True}, r"`cols` must be an int >= 1"),
        ({"rows": -1}, r"^`rows` must be an int >= 1; received: rows=-1$"),
        ({"padding": -1}, r"^`padding` must be an int >= 0; received: padding=-1$"),
        ({"rows": 1, "cols": 2}, r"^`rows \* cols` must be at least the 3 images; received: rows=1, cols=2$"),
    ],
)
def test_make_grid_bad_arguments_are_one_line_usage_errors(kwargs, match):
    with pytest.raises(UsageError, match=match):
        images.make_grid(_tiles(1, 2, 3), **kwargs)


@pytest.mark.parametrize(
    "batch",
    [np.zeros((3, 2, 2, 3), np.float32), np.zeros((2, 2, 3), np.uint8), np.zeros((0, 2, 2, 3), np.uint8)],
)
def test_make_grid_wants_a_non_empty_uint8_batch(batch):
    with pytest.raises(ValueError, match=r"^`images` must be a uint8 array of shape \(N, H, W, C\) with N >= 1"):
        images.make_grid(batch)


def test_save_grid_writes_the_grid_as_a_png(tmp_path):
    tiles = np.random.default_rng(0).integers(0, 256, (5, 3, 3, 3), dtype=np.uint8)
    path = tmp_path / "new" / "folder" / "grid.png"
    assert images.save_grid(tiles, path, cols=2) == str(path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image)
    assert pixels.shape == (3 * 4 + 1, 2 * 4 + 1, 3)
    for index, tile in enumerate(tiles):  # Tile i at row i // 2, column i % 2, each cell 3 + 1 pixels.
        top, left = 1 + (index // 2) * 4, 1 + (index % 2) * 4
        np.testing.assert_array_equal(pixels[top : top + 3, left : left + 3], tile)
    assert os.listdir(path.parent) == ["grid.png"]  # No temporary file is left behind.


def test_save_grid_overwrites_and_writes_grayscale(tmp_path):
    path = str(tmp_path / "grid.png")
    images.save_grid(_tiles(1, 2), path)
    images.save_grid(_tiles(200, channels=1), path)
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), np.pad(np.full((2, 2), 200, np.uint8), 1))


def test_save_grid_rejects_a_bad_cols_in_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"^`cols` must be an int >= 1; received: cols=0$"):
        images.save_grid(_tiles(1), tmp_path / "grid.png", cols=0)
    assert not os.listdir(tmp_path)


# -- upscale, heat colours, attention overlays --------------------------------------------------


def test_upscale_repeats_each_pixel_by_the_smallest_sufficient_factor():
    image = np.arange(2 * 3 * 3 * 2, dtype=np.uint8).reshape(2, 3, 3, 2)
    big = images.upscale(image, 7)  # ceil(7 / 3) = 3.
    assert big.shape == (2, 9, 9, 2)
    for y in range(9):
        for x in range(9):
            np.testing.assert_array_equal(big[:, y, x], image[:, y // 3, x // 3])
    assert images.upscale(image[0], 6).shape == (6, 6, 2)  # Exactly twice.
    assert images.upscale(image, 3) is image  # Already big enough.


def test_heat_colors_by_hand():
    colors = images.heat_colors(np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    # r, g, b = clip(1.5 - |4 (h - c)|) for centres 0.75, 0.5, 0.25.
    expected = [[0, 0, 0.5], [0, 0.5, 1], [0.5, 1, 0.5], [1, 0.5, 0], [0.5, 0, 0]]
    np.testing.assert_allclose(colors, expected)


def test_attention_overlay_puts_the_heat_where_the_query_attends():
    base = np.full((1, 8, 8, 3), 50, np.uint8)
    attention = np.zeros((1, 16, 4), np.float32)  # 4x4 queries over 2x2 pooled keys.
    attention[:, :, 3] = 1.0  # Every query looks at the bottom-right key.
    out = images.attention_overlays(base, attention, queries=[(0.0, 0.0)], alpha=1.0)
    assert out.shape == (1, 2, 8, 8, 3) and out.dtype == np.uint8
    assert (out[:, 0] == base).all()
    overlay = out[0, 1].astype(int)
    assert (overlay[:2, :2] == 255).all()  # The query pixel (row 0, column 0: a 2x2 cell) is marked.
    # Fully hot at the attended key: the colour map's top, dark red (0.5, 0, 0).
    np.testing.assert_array_equal(overlay[7, 7], [128, 0, 0])
    np.testing.assert_array_equal(overlay[3, 0], [50, 50, 50])  # No attention there: the image.
    # Bilinear with half-pixel centres: output row 4 samples key row (4 + 0.5) * 2 / 8 - 0.5 = 0.625, column 7
    # clamps to key column 1, so the heat is 0.625 (yellow: r = g = 1, b = 0).
    heat = 0.625
    expected = np.round((1 - heat) * 50 + heat * 255 * images.heat_colors(np.array(heat)))
    np.testing.assert_array_equal(overlay[4, 7], expected)
    with pytest.raises(ValueError, match="square"):
        images.attention_overlays(base, np.zeros((1, 15, 4), np.float32))


def test_attention_overlay_with_zero_alpha_is_the_image_and_the_marker():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, (2, 8, 8, 3), dtype=np.uint8)
    attention = rng.uniform(size=(2, 16, 16)).astype(np.float32)
    out = images.attention_overlays(base, attention, queries=[(0.5, 0.75)], alpha=0.0)
    expected = base.copy()
    expected[:, 4:6, 6:8] = 255  # Query (row 2, column 3) of the 4x4 grid: a 2x2 cell.
    np.testing.assert_array_equal(out[:, 1], expected)
