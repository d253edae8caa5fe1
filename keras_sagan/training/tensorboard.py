"""What training shows a person: TensorBoard summaries and PNG sample grids, from fixed noise.

`TensorBoardLogger` writes the losses, attention gammas, spectral-norm sigmas, throughput,
sample grids and attention heat maps into event files; `SampleGridWriter` writes sample grids
into a folder. Both draw their noise once, so successive pictures show the same latents, and
sample from `model.sampling_generator()` (the EMA generator when present) with `training=False`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_sagan.images import DEFAULT_QUERIES, attention_overlays, make_grid, save_grid, to_uint8, upscale
from keras_sagan.layers import SpectralNormalization
from keras_sagan.models.sampling import sample
from keras_sagan.training.steps import IntervalMeans, StepCallback, Throughput, current_step

SCALAR_TAGS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_real": "d/real", "d_fake": "d/fake"}
"""TensorBoard tag of each log key; `gamma_<name>` keys become `gamma/<name>`."""


def fixed_noise(num_samples: int, z_dim: int, seed: int = 0) -> np.ndarray:
    """Draws the fixed `(num_samples, z_dim)` float32 noise that sample grids reuse at every step."""
    return np.random.default_rng(seed).standard_normal((num_samples, z_dim)).astype(np.float32)


def generate(generator, z: np.ndarray, return_attention: bool = False):
    """Runs `generator` in inference mode (`training=False`) on `z` and returns uint8 NumPy images.

    Through `models.sampling.sample`: a class-conditional generator gets its label rule, classes
    `0, 1, 2, ...` (cycling). With `return_attention=True`, also returns the list of attention maps
    as NumPy arrays.
    """
    if return_attention:
        images, maps = sample(generator, z, return_attention=True)
        return _pixels(images), [np.asarray(keras.ops.convert_to_numpy(m), dtype=np.float32) for m in maps]
    return _pixels(sample(generator, z))


def _pixels(images):
    return keras.ops.convert_to_numpy(to_uint8(images))


def _child_layers(layer):
    if hasattr(layer, "named_blocks"):  # Generator, Discriminator: blocks live in lists, named `up0`, `down0`, ...
        return list(layer.named_blocks().items())
    if isinstance(layer, keras.Sequential):
        return [(str(index), child) for index, child in enumerate(layer.layers)]
    return [
        (name, value)
        for name, value in vars(layer).items()
        if not name.startswith("_") and isinstance(value, keras.layers.Layer)
    ]


def spectral_norm_layers(network: keras.layers.Layer, prefix: str = "") -> dict[str, SpectralNormalization]:
    """Returns `{path: layer}` for every `SpectralNormalization` inside `network`.

    Paths follow a network's `named_blocks()` (`up0`, `down1`, `attention_16`: its checkpoint
    names), then attribute names inside a block, with the index of a layer inside a
    `keras.Sequential` (`up0/0`, `attention_16/query`), so they are the same in every run.
    """
    found = {}
    for name, child in _child_layers(network):
        path = f"{prefix}/{name}" if prefix else name
        if isinstance(child, SpectralNormalization):
            found[path] = child
        else:
            found.update(spectral_norm_layers(child, path))
    return found


def spectral_norms(network: keras.layers.Layer) -> dict[str, float]:
    """Returns `{path: sigma}`: each `SpectralNormalization`'s current sigma estimate (no update)."""
    return {path: float(layer.spectral_norm()) for path, layer in spectral_norm_layers(network).items()}


class TensorBoardLogger(StepCallback):
    """Writes training summaries with a `tf.summary` file writer into `log_dir`.

    Every `scalar_every` steps: `loss/d`, `loss/g`, `d/real`, `d/fake` (means over the interval),
    `gamma/<layer>` for every attention block (`gamma/G16`, `gamma/D8`, ...), `sigma/<network>/
    <layer path>` for every `SpectralNormalization` layer plus `sigma/<network>/max` and `/mean`,
    and `perf/images_per_second`.

    Every `image_every` steps (and at the end): `samples`, a grid generated from fixed noise by
    the sampling generator (the EMA one when present) with `training=False`, and, when the
    generator has attention, `attention/G<resolution>`: for its last attention block, each
    sample followed by heat maps of where a few query pixels attend (see
    `keras_sagan.images.attention_overlays`). Both are nearest-upscaled to at least 256 pixels.

    Args:
        log_dir: str. Directory of the event files.
        global_batch_size: int. Images per step, for `perf/images_per_second`.
        scalar_every: int. Steps between scalar summaries. Defaults to `50`.
        image_every: int. Steps between image summaries. Defaults to `250`.
        num_samples: int. Images in the sample grid. Defaults to `64`.
        num_attention_samples: int. Images in the attention grid. Defaults to `4`.
        seed: int. Seed of the fixed noise. Defaults to `0`.
        queries: query points for the attention maps. Defaults to
            `keras_sagan.images.DEFAULT_QUERIES`.
    """

    def __init__(
        self,
        log_dir: str,
        global_batch_size: int,
        scalar_every: int = 50,
        image_every: int = 250,
        num_samples: int = 64,
        num_attention_samples: int = 4,
        seed: int = 0,
        queries: Sequence[tuple[float, float]] = DEFAULT_QUERIES,
    ):
        super().__init__()
        self.log_dir = log_dir
        self.global_batch_size = global_batch_size
        self.scalar_every = scalar_every
        self.image_every = image_every
        self.num_samples = num_samples
        self.num_attention_samples = num_attention_samples
        self.seed = seed
        self.queries = tuple(queries)
        self.means = IntervalMeans()
        self.throughput = Throughput(global_batch_size)
        self.writer = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.writer = tf.summary.create_file_writer(self.log_dir)
        self.means.reset()
        self.throughput.reset()
        self._last_image_step = None
        self._z = fixed_noise(self.num_samples, self.model.generator.z_dim, self.seed)

    def on_step(self, step, batches, logs):
        if step % self.scalar_every == 0:
            self._write_scalars(step, batches, logs)
        if step % self.image_every == 0:
            self._write_images(step)

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        if self._last_image_step != step and step > self._start_step:
            self._write_images(step)
        self.writer.flush()
        self.writer.close()

    def _write_scalars(self, step, batches, logs):
        means = self.means.update(batches, logs)
        rate = self.throughput.update(batches)
        with self.writer.as_default(step=step):
            for key, value in means.items():
                tf.summary.scalar(SCALAR_TAGS[key], value)
            for key, value in logs.items():
                if key.startswith("gamma_"):
                    tf.summary.scalar(f"gamma/{key[len('gamma_') :]}", float(value))
            for name in ("generator", "discriminator"):
                sigmas = spectral_norms(getattr(self.model, name))
                for path, sigma in sigmas.items():
                    tf.summary.scalar(f"sigma/{name}/{path}", sigma)
                if sigmas:
                    tf.summary.scalar(f"sigma/{name}/max", max(sigmas.values()))
                    tf.summary.scalar(f"sigma/{name}/mean", float(np.mean(list(sigmas.values()))))
            tf.summary.scalar("perf/images_per_second", rate)
        self.writer.flush()

    def _write_images(self, step):
        self._last_image_step = step
        generator = self.model.sampling_generator()
        with self.writer.as_default(step=step):
            images = generate(generator, self._z)
            tf.summary.image("samples", upscale(make_grid(images), 256)[np.newaxis])
            if generator.attention_layers:
                z = self._z[: self.num_attention_samples]
                images, maps = generate(generator, z, return_attention=True)
                overlays = attention_overlays(images, maps[-1], self.queries)
                grid = make_grid(overlays.reshape((-1,) + overlays.shape[2:]), cols=overlays.shape[1])
                resolution = math.isqrt(maps[-1].shape[1])
                tf.summary.image(f"attention/G{resolution}", upscale(grid, 256)[np.newaxis])
        self.writer.flush()


class SampleGridWriter(StepCallback):
    """Writes `directory/step_XXXXXX.png` sample grids from fixed noise every `every` steps.

    The noise is drawn once from `seed`, so successive grids show the same latents. Images
    come from `model.sampling_generator()` (the EMA generator when present) with
    `training=False`. A grid is also written at the end of training.

    Args:
        directory: str. Folder of the PNG files (created).
        every: int. Steps between grids. Defaults to `250`.
        num_samples: int. Images per grid. Defaults to `64`.
        seed: int. Seed of the fixed noise. Defaults to `0`.
    """

    def __init__(self, directory: str, every: int = 250, num_samples: int = 64, seed: int = 0):
        super().__init__()
        self.directory = directory
        self.every = every
        self.num_samples = num_samples
        self.seed = seed
        self.written = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        os.makedirs(self.directory, exist_ok=True)
        self._z = fixed_noise(self.num_samples, self.model.generator.z_dim, self.seed)

    def on_step(self, step, batches, logs):
        if step % self.every == 0:
            self.write(step)

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        if step > self._start_step and (not self.written or self.written[-1][0] != step):
            self.write(step)

    def write(self, step: int) -> str:
        """Generates and writes the grid for `step`; returns its path."""
        images = generate(self.model.sampling_generator(), self._z)
        path = save_grid(images, os.path.join(self.directory, f"step_{step:06d}.png"))
        self.written.append((step, path))
        return path
