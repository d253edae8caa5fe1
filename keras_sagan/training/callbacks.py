"""Keras callbacks for SAGAN training: progress lines, TensorBoard, sample grids, checkpoints, Ctrl-C.

Every callback numbers steps with the generator optimizer's `iterations` (one per train step,
restored with a checkpoint), so the count continues across resumed runs. They read the batch
`logs` of `SAGAN.train_step`, whose `d_loss`, `g_loss`, `d_real` and `d_fake` are running means
since the start of `fit()`; `IntervalMeans` turns them back into means over each log interval.

Example:

```python
gan.fit(
    dataset,
    steps_per_epoch=1000,
    callbacks=[
        ProgressLogger(total_steps=1000, global_batch_size=64, every=50),
        TensorBoardLogger("runs/sagan/logs", global_batch_size=64),
        SampleGridWriter("runs/sagan/samples", every=500),
        CheckpointSaver(manager, every=500),
        InterruptHandler(),
    ],
)
```
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_sagan.layers import SpectralNormalization

LOSS_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")
"""The running-mean metrics of `SAGAN.train_step`'s logs."""

SCALAR_TAGS = {"d_loss": "loss/d", "g_loss": "loss/g", "d_real": "d/real", "d_fake": "d/fake"}
"""TensorBoard tag of each log key; `gamma_<name>` keys become `gamma/<name>`."""

DEFAULT_QUERIES = ((0.4, 0.3), (0.4, 0.7), (0.7, 0.5))
"""Attention query points as (row, column) fractions of the image: left eye, right eye, mouth on
an aligned face."""


# -- helpers ------------------------------------------------------------------------------------


def current_step(model: keras.Model) -> int:
    """Returns the train step: `model.g_optimizer.iterations` (one per `train_step`)."""
    return int(model.g_optimizer.iterations.numpy())


def make_grid(images: np.ndarray, rows: int | None = None, cols: int | None = None, padding: int = 1) -> np.ndarray:
    """Tiles a batch of images into one image, row-major, with black padding between tiles.

    Args:
        images: uint8 array `(N, H, W, C)`.
        rows: int or None. Rows of the grid; `None` derives it from `cols` (or makes the grid as
            square as possible when both are `None`).
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
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"images must be a uint8 array (N, H, W, C); received {images.dtype} {images.shape}.")
    count, height, width, channels = images.shape
    if cols is None and rows is None:
        cols = max(1, math.ceil(math.sqrt(count)))
    if cols is None:
        cols = max(1, math.ceil(count / rows))
    if rows is None:
        rows = max(1, math.ceil(count / cols))
    if rows * cols < count:
        raise ValueError(f"a {rows}x{cols} grid cannot hold {count} images.")
    grid = np.zeros((rows * (height + padding) + padding, cols * (width + padding) + padding, channels), dtype=np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // cols) * (height + padding)
        left = padding + (index % cols) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscales `(..., H, W, C)` by an integer factor until H >= `min_side`."""
    factor = max(1, math.ceil(min_side / image.shape[-3]))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=-3), factor, axis=-2)


def to_uint8(images) -> np.ndarray:
    """[-1, 1] float images to a uint8 NumPy array: `clip(round((x + 1) * 127.5), 0, 255)`."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def fixed_noise(num_samples: int, z_dim: int, seed: int = 0) -> np.ndarray:
    """Draws the fixed `(num_samples, z_dim)` float32 noise that sample grids reuse at every step."""
    return np.random.default_rng(seed).standard_normal((num_samples, z_dim)).astype(np.float32)


def _sample_labels(generator, num_samples):
    if generator.num_classes is None:
        return None
    return np.arange(num_samples, dtype=np.int32) % generator.num_classes


def generate(generator, z: np.ndarray, return_attention: bool = False):
    """Runs `generator` in inference mode (`training=False`) on `z` and returns uint8 images.

    A class-conditional generator gets labels `0, 1, 2, ...` (cycling). With
    `return_attention=True`, also returns the list of attention maps as NumPy arrays.
    """
    labels = _sample_labels(generator, len(z))
    args = (z,) if labels is None else (z, labels)
    if return_attention:
        images, maps = generator(*args, training=False, return_attention=True)
        return to_uint8(images), [np.asarray(m, dtype=np.float32) for m in maps]
    return to_uint8(generator(*args, training=False))


def _heat_colors(heat: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to a blue-green-red ("jet"-like) colour map, floats in [0, 1]."""
    heat = heat[..., np.newaxis]
    centres = np.array([0.75, 0.5, 0.25])  # r, g, b peaks
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
    images = np.asarray(images)
    attention = np.asarray(attention, dtype=np.float32)
    batch, height, width, _ = images.shape
    query_side = math.isqrt(attention.shape[1])
    key_side = math.isqrt(attention.shape[2])
    if query_side**2 != attention.shape[1] or key_side**2 != attention.shape[2]:
        raise ValueError(f"attention must have square query and key grids; received shape {attention.shape}.")
    out = np.empty((batch, 1 + len(queries), height, width, 3), dtype=np.uint8)
    out[:, 0] = images
    cell = max(1, height // query_side)
    for column, (row_fraction, col_fraction) in enumerate(queries, start=1):
        qy = min(int(row_fraction * query_side), query_side - 1)
        qx = min(int(col_fraction * query_side), query_side - 1)
        heat = attention[:, qy * query_side + qx].reshape(batch, key_side, key_side, 1)
        heat = heat / np.maximum(heat.max(axis=(1, 2, 3), keepdims=True), 1e-12)
        heat = tf.image.resize(heat, (height, width), method="bilinear").numpy()[..., 0]
        heat = np.clip(heat, 0.0, 1.0)
        weight = alpha * heat[..., np.newaxis]  # Keys with little attention leave the image visible.
        blended = (1.0 - weight) * images.astype(np.float32) + weight * 255.0 * _heat_colors(heat)
        blended = np.clip(np.round(blended), 0, 255).astype(np.uint8)
        top, left = qy * height // query_side, qx * width // query_side
        blended[:, top : top + cell, left : left + cell] = 255
        out[:, column] = blended
    return out


def _child_layers(layer):
    if isinstance(layer, keras.Sequential):
        return [(str(index), child) for index, child in enumerate(layer.layers)]
    return [
        (name, value)
        for name, value in vars(layer).items()
        if not name.startswith("_") and isinstance(value, keras.layers.Layer)
    ]


def spectral_norm_layers(network: keras.layers.Layer, prefix: str = "") -> dict[str, SpectralNormalization]:
    """Returns `{path: layer}` for every `SpectralNormalization` inside `network`.

    Paths follow attribute names (`up0/0`, `attention_16/query`), with the index of a layer
    inside a `keras.Sequential`, so they are the same in every run.
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


class IntervalMeans:
    """Turns running means since the start of `fit()` into means over each interval.

    After `n` steps a running mean `m_n` equals `sum / n`, so the mean over steps `(a, b]` is
    `(b * m_b - a * m_a) / (b - a)`.
    """

    def __init__(self, keys: Sequence[str] = LOSS_KEYS):
        self.keys = tuple(keys)
        self.reset()

    def reset(self):
        self._count = 0
        self._sums = dict.fromkeys(self.keys, 0.0)

    def update(self, count: int, logs: dict) -> dict[str, float]:
        """`count` steps since `fit()` began; returns the means since the previous call."""
        means = {}
        for key in self.keys:
            if key not in logs:
                continue
            total = float(logs[key]) * count
            if count > self._count:
                means[key] = (total - self._sums[key]) / (count - self._count)
            self._sums[key] = total
        self._count = count
        return means


# -- callbacks ----------------------------------------------------------------------------------


class StepCallback(keras.callbacks.Callback):
    """Calls `on_step(step, batches, logs)` once for each new train step.

    `step` is `g_optimizer.iterations`; `batches` counts the train steps run since `fit()`
    began (the updates behind the running means in `logs`). The two differ by the restored step,
    and under `mixed_float16` also by the steps whose gradients overflowed: loss scaling skips
    those updates and `iterations` does not advance, so no new step is reported for them.
    """

    def on_train_begin(self, logs=None):
        self._start_step = self._seen_step = current_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = current_step(self.model)
        if step != self._seen_step:
            self._seen_step = step
            self.on_step(step, batch + 1, logs or {})

    def on_step(self, step: int, batches: int, logs: dict) -> None:
        pass


class _Throughput:
    """Images per second between successive calls, from the batch count and the wall clock."""

    def __init__(self, global_batch_size):
        self.global_batch_size = global_batch_size
        self.reset()

    def reset(self):
        self._batches, self._time = 0, time.perf_counter()

    def update(self, batches):
        now = time.perf_counter()
        rate = self.global_batch_size * (batches - self._batches) / max(now - self._time, 1e-9)
        self._batches, self._time = batches, now
        return rate


class ProgressLogger(StepCallback):
    """Prints one line every `every` steps: step/total, d_loss, g_loss and images per second.

    The losses are means over the interval; images per second is `global_batch_size` times the
    batches of the interval over its wall time (the first interval includes graph tracing).

    Args:
        total_steps: int. The run's final step, shown after the slash.
        global_batch_size: int. Images per step over all replicas.
        every: int. Steps between lines. Defaults to `50`.
        print_fn: callable taking one string. Defaults to `print` (flushed).
    """

    def __init__(self, total_steps: int, global_batch_size: int, every: int = 50, print_fn: Callable | None = None):
        super().__init__()
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.every = every
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.means = IntervalMeans()
        self.throughput = _Throughput(global_batch_size)
        self.lines = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.means.reset()
        self.throughput.reset()

    def on_step(self, step, batches, logs):
        if step % self.every and step != self.total_steps:
            return
        means = self.means.update(batches, logs)
        rate = self.throughput.update(batches)
        parts = [f"step {step}/{self.total_steps}"]
        parts += [f"{key} {means[key]:.4f}" for key in ("d_loss", "g_loss") if key in means]
        parts.append(f"{rate:.1f} images/s")
        line = "  ".join(parts)
        self.lines.append(line)
        self.print_fn(line)


class TensorBoardLogger(StepCallback):
    """Writes training summaries with a `tf.summary` file writer into `log_dir`.

    Every `scalar_every` steps: `loss/d`, `loss/g`, `d/real`, `d/fake` (means over the interval),
    `gamma/<layer>` for every attention block (`gamma/G16`, `gamma/D8`, ...), `sigma/<network>/
    <layer path>` for every `SpectralNormalization` layer plus `sigma/<network>/max` and `/mean`,
    and `perf/images_per_second`.

    Every `image_every` steps (and at the end): `samples`, a grid generated from fixed noise by
    the sampling generator (the EMA one when present) with `training=False`, and, when the
    generator has attention, `attention/G<resolution>`: for its last attention block, each
    sample followed by heat maps of where a few query pixels attend (see `attention_overlays`).

    Args:
        log_dir: str. Directory of the event files.
        global_batch_size: int. Images per step, for `perf/images_per_second`.
        scalar_every: int. Steps between scalar summaries. Defaults to `50`.
        image_every: int. Steps between image summaries. Defaults to `250`.
        num_samples: int. Images in the sample grid. Defaults to `64`.
        num_attention_samples: int. Images in the attention grid. Defaults to `4`.
        seed: int. Seed of the fixed noise. Defaults to `0`.
        queries: query points for the attention maps. Defaults to `DEFAULT_QUERIES`.
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
        self.throughput = _Throughput(global_batch_size)
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
        grid = make_grid(generate(self.model.sampling_generator(), self._z))
        path = os.path.join(self.directory, f"step_{step:06d}.png")
        tmp = f"{path}.tmp"
        Image.fromarray(grid).save(tmp, format="PNG")
        os.replace(tmp, path)
        self.written.append((step, path))
        return path


class CheckpointSaver(StepCallback):
    """Saves `manager`'s checkpoint every `every` steps and at the end of training.

    Checkpoints are numbered by step (`ckpt-<step>`). `tf.train.CheckpointManager` writes the
    data files first and then replaces its `checkpoint` index file atomically, so a process
    killed mid-save still resumes from the previous checkpoint. The end-of-training save also
    runs when training stops early (`model.stop_training`, as `InterruptHandler` sets it).

    Under `MultiWorkerMirroredStrategy` every worker must save at the same steps (a save can
    read sync-on-read variables, which is a collective op), but only the chief's copy is kept:
    the other workers pass `discard=True` and a manager over a scratch directory of their own,
    which is deleted after each save.

    Args:
        manager: `tf.train.CheckpointManager` over the training `tf.train.Checkpoint`.
        every: int. Steps between checkpoints. Defaults to `500`.
        discard: bool. Delete `manager.directory` after each save (a non-chief worker's copy).
            Defaults to `False`.
    """

    def __init__(self, manager: tf.train.CheckpointManager, every: int = 500, discard: bool = False):
        super().__init__()
        self.manager = manager
        self.every = every
        self.discard = discard
        self.saved = []

    def on_step(self, step, batches, logs):
        if step % self.every == 0:
            self.save(step)

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        if not self.saved or self.saved[-1][0] != step:
            self.save(step)

    def save(self, step: int) -> str:
        """Saves now, numbered `step`; returns the checkpoint prefix (deleted again with `discard`)."""
        path = self.manager.save(checkpoint_number=step)
        if self.discard:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        self.saved.append((step, path))
        return path


class InterruptHandler(keras.callbacks.Callback):
    """Turns SIGINT (Ctrl-C) and SIGTERM during `fit()` into a clean stop after the current step.

    The first signal sets `interrupted` and `model.stop_training`; `fit()` then ends after the
    running step, and `CheckpointSaver.on_train_end` saves. A second signal raises
    `KeyboardInterrupt` at once. The previous handlers are back after training. Handlers can
    only be installed from the main thread; elsewhere this callback does nothing.

    With several workers, a signal reaches them at different steps, or reaches only one. `agree`
    is then called by every worker after every step with its own "stop" flag and returns whether
    any worker wants to stop (`distributed.make_stop_agreement`), so all stop after the same step
    and save together; a worker stopped by another reports `interrupted = "peer"`.

    Args:
        signals: the signals to catch. Defaults to SIGINT and SIGTERM.
        print_fn: callable taking one string, told when a signal arrives. Defaults to printing
            to stdout.
        agree: callable `(bool) -> bool` or None. The all-worker "any stops?" decision; `None`
            (one worker) uses the local flag.
    """

    def __init__(
        self,
        signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
        print_fn: Callable | None = None,
        agree: Callable[[bool], bool] | None = None,
    ):
        super().__init__()
        self.signals = tuple(signals)
        self.print_fn = print_fn or (lambda line: print(line, flush=True))
        self.agree = agree
        self.interrupted = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.interrupted is not None:
            raise KeyboardInterrupt
        self.interrupted = signal.Signals(signum).name
        if self.model is not None:
            self.model.stop_training = True
        self.print_fn(
            f"{self.interrupted} received: saving a checkpoint after this step (send it again to abort at once)"
        )

    def on_train_begin(self, logs=None):
        self.interrupted = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_batch_end(self, batch, logs=None):
        stop = self.interrupted is not None
        if self.agree is not None and self.agree(stop) and not stop:
            self.interrupted = "peer"
            self.print_fn("another worker was interrupted: saving a checkpoint after this step")
            stop = True
        if stop:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
