"""Where one query pixel attends, in every attention layer of a generator, and what attention adds.

`query_maps(generator, z, labels, row, col)` runs `Generator(..., return_attention=True)` once and
returns, for each attention layer in forward order, a `LayerMap`: the layer's feature resolution,
its `gamma`, the query's cell at that resolution and the `(k, k)` grid of attention weights over
the keys (k is the resolution, or half of it when keys are pooled). `without_attention(generator)`
is a copy with every `gamma` set to 0: the same network with attention switched off.
`attention_figure` draws the sample, its attention-off twin and one overlay per layer into one
picture, as `keras-sagan attention` writes it.

`row` and `col` are pixels of the output image; a layer at resolution r sees the query in cell
`(row * r // H, col * r // W)`.

Example:

```python
images, maps = query_maps(generator, z[:1], None, row=12, col=20)
for layer in maps:
    print(layer.resolution, layer.gamma, layer.values.shape)
```
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from PIL import Image, ImageDraw

from keras_sagan.errors import UsageError, bad_value
from keras_sagan.images import attention_overlays, to_uint8, upscale
from keras_sagan.models.sampling import sample


@dataclasses.dataclass
class LayerMap:
    """One attention layer's weights for one query.

    Attributes:
        name: str. The layer's name (`attention_16`, ...).
        resolution: int. Side of the layer's feature map (its query grid).
        gamma: float. The layer's learned residual weight (0: attention has no effect).
        query: (int, int). The query's cell (row, column) in the `resolution x resolution` grid.
        values: float32 `(k, k)`. Attention weights over the key grid; they sum to 1.
    """

    name: str
    resolution: int
    gamma: float
    query: tuple
    values: np.ndarray

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "resolution": self.resolution,
            "gamma": self.gamma,
            "query": list(self.query),
            "key_side": int(self.values.shape[0]),
            "values": self.values.tolist(),
        }


def check_has_attention(generator, what: str = "this model") -> None:
    """A one-line `UsageError` when `generator` has no attention layer."""
    if not getattr(generator, "attention_layers", None):
        raise UsageError(f"{what} has no attention layer (attention_resolutions=()); there are no maps to show")


def check_query(row, col, image_size: int) -> tuple[int, int]:
    """`(row, col)` as ints inside the `image_size x image_size` image, or a one-line `UsageError`."""
    for value in (row, col):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < image_size:
            raise UsageError(
                bad_value("query", f"{row},{col}", f"ROW,COL pixels inside the {image_size}x{image_size} image "
                          f"(0 <= ROW, COL < {image_size})")
            )  # fmt: skip
    return int(row), int(col)


def parse_query(text: str, image_size: int) -> tuple[int, int]:
    """`"ROW,COL"` as a checked `(row, col)`."""
    parts = str(text).replace(" ", "").split(",")
    try:
        row, col = (int(part) for part in parts)
    except ValueError:
        raise UsageError(bad_value("query", text, "ROW,COL: two integer pixel coordinates")) from None
    return check_query(row, col, image_size)


def query_maps(generator, z, labels, row: int, col: int) -> tuple[np.ndarray, list[LayerMap]]:
    """Generates one image and the attention of pixel `(row, col)` in every attention layer.

    Args:
        generator: a Keras `Generator` with at least one attention layer.
        z: float `(1, z_dim)`.
        labels: None, int `(1,)` or float class weights `(1, num_classes)`.
        row, col: int. The query pixel of the output image.

    Returns:
        `(image, maps)`: the float image `(H, W, C)` in [-1, 1] and one `LayerMap` per
        attention layer, in forward order.
    """
    check_has_attention(generator)
    size = generator.image_size
    row, col = check_query(row, col, size)
    images, attention = sample(generator, z, labels, return_attention=True)
    maps = []
    for layer, weights in zip(generator.attention_layers, attention):
        weights = keras.ops.convert_to_numpy(keras.ops.cast(weights, "float32"))[0]
        resolution = math.isqrt(weights.shape[0])
        key_side = math.isqrt(weights.shape[1])
        query = (row * resolution // size, col * resolution // size)
        values = weights[query[0] * resolution + query[1]].reshape(key_side, key_side)
        gamma = float(keras.ops.convert_to_numpy(layer.gamma))
        maps.append(LayerMap(layer.name, resolution, gamma, query, values))
    return keras.ops.convert_to_numpy(keras.ops.cast(images, "float32"))[0], maps


def without_attention(generator):
    """A copy of `generator` (same config and weights) with every attention layer's `gamma` set to 0."""
    check_has_attention(generator)
    copy = type(generator).from_config(generator.get_config())
    copy.build()
    copy.set_weights(generator.get_weights())
    for layer in copy.attention_layers:
        layer.gamma.assign(0.0)
    return copy


def overlay(image: np.ndarray, layer_map: LayerMap, row: int, col: int) -> np.ndarray:
    """uint8 `(H, W, 3)`: `layer_map`'s heat over the uint8 `image` (`(H, W, C)`, C 1 or 3), query cell in white."""
    height = image.shape[0]
    side = layer_map.resolution
    full = np.zeros((1, side * side) + (layer_map.values.size,), np.float32)
    full[0, layer_map.query[0] * side + layer_map.query[1]] = layer_map.values.reshape(-1)
    fraction = ((row + 0.5) / height, (col + 0.5) / image.shape[1])  # the pixel's cell, as attention_overlays reads it
    rgb = np.broadcast_to(image, image.shape[:2] + (3,)) if image.shape[-1] == 1 else image
    return attention_overlays(rgb[np.newaxis], full, queries=(fraction,))[0, 1]


def _panel(image: np.ndarray, side: int, caption: str) -> Image.Image:
    pixels = upscale(image, side)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    panel = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + 14), "white")
    panel.paste(Image.fromarray(np.ascontiguousarray(pixels)), (0, 14))
    ImageDraw.Draw(panel).text((2, 1), caption, fill="black")
    return panel


def attention_figure(image, image_off, maps: list[LayerMap], row: int, col: int, min_side: int = 128) -> Image.Image:
    """One picture: the sample, the sample with attention off, then one overlay per layer, captioned.

    Args:
        image, image_off: float `(H, W, C)` in [-1, 1] (C 1 or 3).
        maps: the `LayerMap`s of `query_maps` for pixel `(row, col)`.
        min_side: int. Panels are upscaled (nearest) to at least this side.
    """
    pixels = keras.ops.convert_to_numpy(to_uint8(image))
    off = keras.ops.convert_to_numpy(to_uint8(image_off))
    panels = [_panel(pixels, min_side, f"sample, query {row},{col}"), _panel(off, min_side, "attention off")]
    for layer_map in maps:
        caption = f"{layer_map.resolution}x{layer_map.resolution} gamma {layer_map.gamma:.3g}"
        panels.append(_panel(overlay(pixels, layer_map, row, col), min_side, caption))
    width = sum(panel.width for panel in panels) + 4 * (len(panels) - 1)
    figure = Image.new("RGB", (width, max(panel.height for panel in panels)), "white")
    left = 0
    for panel in panels:
        figure.paste(panel, (left, 0))
        left += panel.width + 4
    return figure
