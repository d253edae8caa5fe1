"""Image utilities, the package's one owner of them: uint8 conversion, grids, upscaling, attention overlays.

Generators output float images in [-1, 1]; `to_uint8` turns them into pixels (it is written in
`keras.ops`, so it runs on NumPy input, inside a `tf.function` such as the TF Serving signature,
and on any Keras backend). The rest works on uint8 NumPy arrays on the host: `make_grid` tiles a
batch into one picture (1 pixel of black padding, the same for training grids and `sample`),
`save_grid` writes that picture as a PNG, `upscale` enlarges small images for TensorBoard and
`attention_overlays` draws where self-attention looks as heat maps over the images.

Example:

```python
pixels = keras.ops.convert_to_numpy(to_uint8(generator(z, training=False)))
save_grid(pixels, "samples/grid.png", cols=8)
```
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import keras
import numpy as np
from PIL import Image

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError, bad_value

DEFAULT_QUERIES = ((0.4, 0.3), (0.4, 0.7), (0.7, 0.5))
"""Attention query points as (row, column) fractions of the image: left eye, right eye, mouth on
an aligned face."""


def to_uint8(images):
    """Maps float images in [-1, 1] to uint8 pixels: `clip(round((x + 1) * 127.5), 0, 255)`.

    The exact inverse of the data pipeline's scaling `x = p / 127.5 - 1` for every level `p`.
    Rounding is half to even (`tf.round`, `jnp.round`); values outside [-1, 1] are clipped, so
    generator outputs slightly out of range are safe to pass. Inputs are cast to float32 first,
    so float16 and bfloat16 outputs convert as exactly as float32 ones.

    Args:
        images: float array or tensor of any shape (NumPy, or a tensor of the Keras backend,
            symbolic inside a `tf.function` included).

    Returns:
        A uint8 tensor of the backend, of the same shape. Use `keras.ops.convert_to_numpy` for
        a NumPy array.

    Example:

    >>> keras.ops.convert_to_numpy(to_uint8(np.array([-1.0, 0.0, 1.0])))
    array([  0, 128, 255], dtype=uint8)
    """
    images = keras.ops.cast(images, "float32")
    pixels = keras.ops.clip(keras.ops.round((images + 1.0) * 127.5), 0.0, 255.0)
    return keras.ops.cast(pixels, "uint8")


def _check_grid_size(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(bad_value(name, value, "an int >= 1"))


def make_grid(images, rows: int | None = None, cols: int | None = None, padding: int = 1) -> np.ndarray:
    """Tiles a batch of images into one image, row-major, with black padding between tiles.

    Args:
        images: uint8 array (or backend tensor) `(N, H, W, C)`, `N >= 1`.
        rows: int or None. Rows of the grid; `None` derives it from `cols` (or makes the grid as
            square as possible when both are `None`: `cols = ceil(sqrt(N))`).
        cols: int or None. Columns of the grid; `None` derives it from `rows`.
        padding: int. Pixels between tiles and around the border. Defaults to `1`.

    Returns:
        A uint8 array `(rows * (H + padding) + padding, cols * (W + padding) + padding, C)`.
        Cells beyond `N` stay black.

    Example:

    >>> grid = make_grid(np.zeros((64, 32, 32, 3), np.uint8))  # 8 x 8 tiles
    >>> grid.shape
    (265, 265, 3)
    """
    images = keras.ops.convert_to_numpy(images)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[0] < 1:
        raise UsageError(
            "`images` must be a uint8 array of shape (N, H, W, C) with N >= 1; "
            f"received: dtype={images.dtype}, shape={images.shape}"
        )
    _check_grid_size("rows", rows)
    _check_grid_size("cols", cols)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise UsageError(bad_value("padding", padding, "an int >= 0"))
    count, height, width, channels = images.shape
    if cols is None and rows is None:
        cols = math.ceil(math.sqrt(count))
    if cols is None:
        cols = math.ceil(count / rows)
    if rows is None:
        rows = math.ceil(count / cols)
    if rows * cols < count:
        raise UsageError(f"`rows * cols` must be at least the {count} images; received: rows={rows}, cols={cols}")
    grid = np.zeros((rows * (height + padding) + padding, cols * (width + padding) + padding, channels), np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // cols) * (height + padding)
        left = padding + (index % cols) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_grid(images, path: str | os.PathLike, cols: int | None = None) -> str:
    """Writes `make_grid(images, cols=cols)` as a PNG file at `path` and returns `path`.

    The parent directory is created. The file is written under a temporary name and then
    renamed, so a reader (TensorBoard, a browser refreshing the samples folder) never sees half
    a PNG and an interrupted write leaves any previous file in place.

    Args:
        images: uint8 array `(N, H, W, 3)` (or `(N, H, W, 1)`, written as grayscale).
        path: str or path-like. The PNG file to write.
        cols: int or None. Columns of the grid; `None` makes it as square as possible.

    Returns:
        `path` as a string.
    """
    grid = make_grid(images, cols=cols)
    path = os.fspath(path)
    with atomic_write(path) as f:
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(f, format="PNG")
    return path


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscales `(..., H, W, C)` by the smallest integer factor giving H >= `min_side`."""
    factor = max(1, math.ceil(min_side / image.shape[-3]))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=-3), factor, axis=-2)


def heat_colors(heat: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to a blue-green-red ("jet"-like) colour map: floats in [0, 1], one more axis of 3."""
    heat = np.asarray(heat)[..., np.newaxis]
    centres = np.array([0.75, 0.5, 0.25])  # Where red, green and blue peak.
    return np.clip(1.5 - np.abs(4.0 * (heat - centres)), 0.0, 1.0)


def attention_overlays(
    images: np.ndarray,
    attention: np.ndarray,
    queries: Sequence[tuple[float, float]] = DEFAULT_QUERIES,
    alpha: float = 0.8,
) -> np.ndarray:
    """Blends, for a few query pixels, where the generator looked as a heat map over its output.

    `attention[b, i, j]` is how much query position `i` (a pixel of the attention layer's
    `h x w` feature map, row-major) attends to key position `j` (a pixel of the key grid, which
    is `h/2 x w/2` when keys are pooled). For each query point, the key axis is reshaped to its
    grid, scaled so its maximum is 1, resized bilinearly to the image size, coloured and blended
    over the image with weight `alpha * heat` (so the image shows through where attention is
    low); the query pixel is marked with a white square.

    Args:
        images: uint8 `(B, H, W, 3)`, the images generated in the same forward pass.
        attention: float `(B, N_query, N_key)` with square query and key grids.
        queries: (row, column) positions as fractions of the image in [0, 1).
        alpha: float. Weight of the heat map where it is hottest. Defaults to `0.8`.

    Returns:
        uint8 `(B, 1 + len(queries), H, W, 3)`: each image, then one overlay per query.
    """
    images = keras.ops.convert_to_numpy(images)
    attention = keras.ops.convert_to_numpy(attention).astype(np.float32)
    batch, height, width, _ = images.shape
    query_side = math.isqrt(attention.shape[1])
    key_side = math.isqrt(attention.shape[2])
    if query_side**2 != attention.shape[1] or key_side**2 != attention.shape[2]:
        raise ValueError(
            f"`attention` must have square query and key grids (B, h*w, k*k); received: shape={attention.shape}"
        )
    out = np.empty((batch, 1 + len(queries), height, width, 3), dtype=np.uint8)
    out[:, 0] = images
    cell = max(1, height // query_side)
    for column, (row_fraction, col_fraction) in enumerate(queries, start=1):
        qy = min(int(row_fraction * query_side), query_side - 1)
        qx = min(int(col_fraction * query_side), query_side - 1)
        heat = attention[:, qy * query_side + qx].reshape(batch, key_side, key_side, 1)
        heat = heat / np.maximum(heat.max(axis=(1, 2, 3), keepdims=True), 1e-12)
        heat = keras.ops.image.resize(heat, (height, width), interpolation="bilinear", data_format="channels_last")
        heat = np.clip(np.nan_to_num(keras.ops.convert_to_numpy(heat)[..., 0], nan=0.0), 0.0, 1.0)  # NaN: diverged.
        weight = alpha * heat[..., np.newaxis]  # Keys with little attention leave the image visible.
        blended = (1.0 - weight) * images.astype(np.float32) + weight * 255.0 * heat_colors(heat)
        blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
        top, left = qy * height // query_side, qx * width // query_side
        blended[:, top : top + cell, left : left + cell] = 255
        out[:, column] = blended
    return out
