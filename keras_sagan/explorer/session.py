"""What the explorer page asks of a model: sample grids, one sample's attention maps, interpolations.

`Explorer(variants)` holds the generators of one model (`loading.load_generator_variants`: the
EMA and live generators of a run, or the one generator of a `.keras` file or SavedModel) and
answers three requests with JSON-ready dicts. Every request parameter arrives as text from the
page's query string and is checked here (`Params`), so a bad one is a one-line `UsageError`, never
a crash. Images go back as PNG data URLs; the numbers behind each attention overlay go back too.
Counts are capped (`MAX_GRID` images, `interpolation.MAX_FRAMES` frames). Nothing here reads a
path from a request: the model is fixed when the server starts.
"""

from __future__ import annotations

import base64
import io
import math
import threading

import keras
import numpy as np
from PIL import Image

from keras_sagan import attention_maps, interpolation
from keras_sagan.errors import UsageError, bad_value
from keras_sagan.export import saved_model
from keras_sagan.images import to_uint8
from keras_sagan.models.sampling import sample

MAX_GRID = 64
"""Most images in one grid request."""


def png_data_url(pixels: np.ndarray) -> str:
    """A `data:image/png;base64,...` URL of uint8 `(H, W, C)` pixels (C 1 or 3)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Params:
    """Typed, range-checked access to a request's query parameters (each a list of strings)."""

    def __init__(self, query: dict):
        self._query = query

    def text(self, name):
        """The parameter's last value, stripped, or None when absent or empty."""
        values = self._query.get(name)
        return values[-1].strip() if values and values[-1].strip() else None

    def int(self, name, low, high, default=None):
        text = self.text(name)
        if text is None:
            if default is None:
                raise UsageError(f"`{name}` is required")
            return default
        try:
            value = int(text)
        except ValueError:
            raise UsageError(bad_value(name, text, f"an integer in [{low}, {high}]")) from None
        if not low <= value <= high:
            raise UsageError(bad_value(name, value, f"an integer in [{low}, {high}]"))
        return value

    def optional_int(self, name, low, high):
        return None if self.text(name) is None else self.int(name, low, high)

    def float(self, name, default):
        text = self.text(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UsageError(bad_value(name, text, "a finite number"))
        return value

    def choice(self, name, choices, default):
        text = self.text(name) or default
        if text not in choices:
            raise UsageError(bad_value(name, text, f"one of {list(choices)}"))
        return text


class Explorer:
    """The model behind the explorer page.

    Args:
        variants: dict. `{name: LoadedGenerator}`, as `loading.load_generator_variants` returns; the
            first is the default.
    """

    def __init__(self, variants: dict):
        self.variants = dict(variants)
        self.default = next(iter(self.variants))
        first = self.variants[self.default]
        self.z_dim, self.num_classes, self.image_size = first.z_dim, first.num_classes, first.image_size
        self._off = {}  # variant -> its copy with attention switched off, made on first use
        self._lock = threading.Lock()  # One model call at a time: the server answers requests in threads.

    def info(self, query: dict | None = None) -> dict:
        """What the page needs to draw its controls (`query` is unused)."""
        first = self.variants[self.default]
        keras_generator = first.keras_generator
        layers = [] if keras_generator is None else keras_generator.attention_layers
        if first.keras_generator is None:
            attention = "a SavedModel is for sampling only: no attention maps"
        elif not layers:
            attention = "this model has no attention layer: no attention maps"
        else:
            attention = None
        return {
            "description": first.description,
            "kind": first.kind,
            "variants": list(self.variants),
            "z_dim": self.z_dim,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "attention_layers": [layer.name for layer in layers],
            "attention_unavailable": attention,
            "max_grid": MAX_GRID,
            "max_frames": interpolation.MAX_FRAMES,
            "modes": list(interpolation.MODES),
        }

    def _variant(self, params):
        """`(name, LoadedGenerator)` of the `variant` parameter (the default one when absent)."""
        name = params.choice("variant", list(self.variants), self.default)
        return name, self.variants[name]

    def _label(self, params, name="label"):
        if self.num_classes is None:
            if params.text(name) is not None:
                raise UsageError(f"`{name}` does not apply: the model is unconditional")
            return None
        return params.optional_int(name, 0, self.num_classes - 1)

    def _grid_inputs(self, params):
        num = params.int("num", 1, MAX_GRID, 16)
        seed = params.int("seed", 0, 2**31 - 1, 0)
        truncation = params.float("truncation", 0.0)
        return num, saved_model.sample_inputs(num, self.z_dim, self.num_classes, seed, truncation, self._label(params))

    def samples(self, query: dict) -> dict:
        """`{"images": [data URL, ...], "labels": [...] or None}` for `seed`, `num`, `truncation`, `label`."""
        params = Params(query)
        _, generator = self._variant(params)
        _, (z, labels) = self._grid_inputs(params)
        with self._lock:
            images = sample(generator, z, labels)
            pixels = keras.ops.convert_to_numpy(to_uint8(images))
        return {
            "images": [png_data_url(p) for p in pixels],
            "labels": None if labels is None else [int(v) for v in labels],
        }

    def attention(self, query: dict) -> dict:
        """Sample `index` of the grid (same `seed`, `num`, `truncation`, `label`) and the maps of pixel `row`, `col`.

        Returns `{"image", "image_off", "layers": [{name, resolution, gamma, query, key_side, values,
        overlay}]}`: the sample, the same sample with every gamma at 0, and per attention layer its map
        for the query (`values`, which sum to 1) and that map over the sample (`overlay`).
        """
        params = Params(query)
        name, generator = self._variant(params)
        if generator.keras_generator is None:
            raise UsageError(
                f"{generator.path} is a SavedModel, for sampling only here: maps need a run directory or a .keras file "
                "(TF Serving clients can call its `attention` signature)"
            )
        attention_maps.check_has_attention(generator.keras_generator, generator.path)
        num, (z, labels) = self._grid_inputs(params)
        index = params.int("index", 0, num - 1, 0)
        row = params.int("row", 0, self.image_size - 1)
        col = params.int("col", 0, self.image_size - 1)
        z = z[index : index + 1]
        labels = None if labels is None else labels[index : index + 1]
        with self._lock:
            if name not in self._off:
                self._off[name] = attention_maps.without_attention(generator.keras_generator)
            image, maps = attention_maps.query_maps(generator.keras_generator, z, labels, row, col)
            off = sample(self._off[name], z, labels)
        pixels = keras.ops.convert_to_numpy(to_uint8(image))
        layers = []
        for layer_map in maps:
            entry = layer_map.as_json()
            entry["overlay"] = png_data_url(attention_maps.overlay(pixels, layer_map, row, col))
            layers.append(entry)
        return {
            "image": png_data_url(pixels),
            "image_off": png_data_url(keras.ops.convert_to_numpy(to_uint8(off))[0]),
            "row": row,
            "col": col,
            "layers": layers,
        }

    def interpolate(self, query: dict) -> dict:
        """Frames from seed `seed_a` to `seed_b` (`frames`, `mode`, `truncation`, `label_a`, `label_b`), and a GIF."""
        params = Params(query)
        _, generator = self._variant(params)
        frames = params.int("frames", interpolation.MIN_FRAMES, interpolation.MAX_FRAMES, 8)
        with self._lock:
            pixels = interpolation.walk(
                generator,
                params.int("seed_a", 0, 2**31 - 1, 0),
                params.int("seed_b", 0, 2**31 - 1, 1),
                frames,
                params.choice("mode", interpolation.MODES, "slerp"),
                params.float("truncation", 0.0),
                self._label(params, "label_a"),
                self._label(params, "label_b"),
            )
        gif = "data:image/gif;base64," + base64.b64encode(interpolation.gif_bytes(pixels)).decode("ascii")
        return {"frames": [png_data_url(p) for p in pixels], "gif": gif}
