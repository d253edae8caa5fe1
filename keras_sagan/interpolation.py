"""Latent interpolation: lerp and slerp between two noise vectors, blends between classes, and GIFs of the walk.

`seed_z(seed, z_dim, truncation)` is the noise of `keras-sagan sample --seed SEED --num 1` (the
serving graph's `sample_z`), so a walk starts and ends on images a user has already seen.
`interpolate_z` gives the frames' noise, `class_weights` the `(frames, num_classes)` blend that a
conditional `Generator` takes in place of integer labels, and `save_gif` / `gif_bytes` write the
frames as an animated GIF. Frame counts are capped at `MAX_FRAMES`.

Example:

```python
z = interpolate_z(seed_z(0, 128), seed_z(1, 128), frames=16, mode="slerp")
pixels = keras.ops.convert_to_numpy(to_uint8(generator(z, training=False)))
save_gif(pixels, "walk.gif")
```
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError, bad_value

MODES = ("lerp", "slerp")
MIN_FRAMES = 2
MAX_FRAMES = 120
"""Largest number of frames of one interpolation (the CLI and the explorer)."""
FRAME_MS = 80
"""Display time of one GIF frame, in milliseconds."""


def check_frames(frames) -> int:
    """`frames` as an int in [`MIN_FRAMES`, `MAX_FRAMES`], or a one-line `UsageError`."""
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or not MIN_FRAMES <= frames <= MAX_FRAMES:
        raise UsageError(bad_value("frames", frames, f"an int in [{MIN_FRAMES}, {MAX_FRAMES}]"))
    return int(frames)


def seed_z(seed: int, z_dim: int, truncation: float = 0.0) -> np.ndarray:
    """The `(z_dim,)` float32 noise of seed `seed`: `saved_model.sample_z(1, z_dim, seed, truncation)[0]`."""
    from keras_sagan.export import saved_model  # TensorFlow's stateless RNG: the same z as `sample` and TF Serving.

    return np.asarray(saved_model.sample_z(1, z_dim, seed, truncation))[0]


def fractions(frames: int) -> np.ndarray:
    """`frames` evenly spaced fractions from 0 to 1, both ends included."""
    return np.linspace(0.0, 1.0, check_frames(frames))


def interpolate_z(z_a, z_b, frames: int, mode: str = "slerp") -> np.ndarray:
    """`(frames, z_dim)` float32 noise from `z_a` to `z_b`, both included.

    `"lerp"` is the straight line `(1 - t) z_a + t z_b`. `"slerp"` moves along the great circle
    (Shoemake 1985; White, "Sampling Generative Networks", 2016): its midpoints keep the norm
    that Gaussian noise has, where a straight line's shrink towards the origin, which the
    generator rarely saw in training. Parallel vectors fall back to `"lerp"`.

    Args:
        z_a, z_b: `(z_dim,)` float arrays.
        frames: int in [`MIN_FRAMES`, `MAX_FRAMES`].
        mode: str. `"lerp"` or `"slerp"`. Defaults to `"slerp"`.

    Returns:
        float32 `(frames, z_dim)`.
    """
    if mode not in MODES:
        raise UsageError(bad_value("mode", mode, f"one of {MODES}"))
    z_a = np.asarray(z_a, np.float64)
    z_b = np.asarray(z_b, np.float64)
    t = fractions(frames)[:, None]
    lerp = (1.0 - t) * z_a + t * z_b
    if mode == "lerp":
        return lerp.astype(np.float32)
    norms = np.linalg.norm(z_a) * np.linalg.norm(z_b)
    cosine = np.clip(np.dot(z_a, z_b) / norms, -1.0, 1.0) if norms > 0 else 1.0
    omega = np.arccos(cosine)
    if np.sin(omega) < 1e-6:
        return lerp.astype(np.float32)
    out = (np.sin((1.0 - t) * omega) * z_a + np.sin(t * omega) * z_b) / np.sin(omega)
    return out.astype(np.float32)


def check_label(name: str, label, num_classes) -> None:
    """A one-line `UsageError` unless `label` is None or a class in [0, `num_classes`) of a conditional model."""
    if label is None:
        return
    if num_classes is None:
        raise UsageError(f"`{name}` does not apply: the model is unconditional; received: {name}={label!r}")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < num_classes:
        raise UsageError(bad_value(name, label, f"a class in [0, {num_classes})"))


def class_weights(label_a: int, label_b: int, frames: int, num_classes: int) -> np.ndarray:
    """`(frames, num_classes)` float32 weights moving linearly from class `label_a` to `label_b`.

    A conditional `Generator` takes them in place of integer labels: each frame's batch-norm
    scale and offset are the weighted sum of the two classes'.
    """
    check_label("label_a", label_a, num_classes)
    check_label("label_b", label_b, num_classes)
    t = fractions(frames)
    weights = np.zeros((len(t), num_classes), np.float32)
    weights[:, label_a] += 1.0 - t
    weights[:, label_b] += t
    return weights


def _frames_as_images(frames) -> list[Image.Image]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3) or len(frames) < 1:
        raise UsageError(f"GIF frames must be uint8 (N, H, W, 1 or 3); received: {frames.dtype} {frames.shape}")
    if frames.shape[-1] == 1:
        return [Image.fromarray(frame[..., 0], mode="L") for frame in frames]
    return [Image.fromarray(frame, mode="RGB") for frame in frames]


def gif_bytes(frames, frame_ms: int = FRAME_MS) -> bytes:
    """An animated, looping GIF of uint8 `(N, H, W, C)` frames (C 1 or 3), as bytes.

    Each frame gets its own palette; grey frames are exact, colour frames are quantised to
    256 colours per frame (GIF's limit).
    """
    images = _frames_as_images(frames)
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0, optimize=False
    )
    return buffer.getvalue()


def save_gif(frames, path: str | os.PathLike, frame_ms: int = FRAME_MS) -> str:
    """Writes `gif_bytes(frames)` to `path` (through a temporary file and a rename) and returns `path`."""
    path = os.fspath(path)
    data = gif_bytes(frames, frame_ms)
    with atomic_write(path) as f:
        f.write(data)
    return path


def walk(generator, seed_a: int, seed_b: int, frames: int, mode: str = "slerp", truncation: float = 0.0,
         label_a=None, label_b=None) -> np.ndarray:  # fmt: skip
    """uint8 `(frames, H, W, C)` images walking from seed `seed_a`'s sample to seed `seed_b`'s.

    The ends are exactly `keras-sagan sample --seed SEED --num 1` (same noise, same class). For a
    conditional model the class goes from `label_a` to `label_b` (each defaults to its seed's
    drawn class); two different classes are blended (`class_weights`), which needs a Keras
    generator: a SavedModel takes integer labels only.

    Args:
        generator: a `keras_sagan.export.loading.LoadedGenerator`.
        seed_a, seed_b: int. The seeds of the two end images.
        frames: int in [`MIN_FRAMES`, `MAX_FRAMES`].
        mode: str. `"lerp"` or `"slerp"` in z. Defaults to `"slerp"`.
        truncation: float. As `sample`'s (<= 0: none).
        label_a, label_b: int or None. Classes of the two ends (conditional models only).
    """
    import keras

    from keras_sagan.export import saved_model
    from keras_sagan.images import to_uint8
    from keras_sagan.models.sampling import sample

    frames = check_frames(frames)
    check_label("label_a", label_a, generator.num_classes)
    check_label("label_b", label_b, generator.num_classes)
    z_a, labels_a = saved_model.sample_inputs(1, generator.z_dim, generator.num_classes, seed_a, truncation, label_a)
    z_b, labels_b = saved_model.sample_inputs(1, generator.z_dim, generator.num_classes, seed_b, truncation, label_b)
    z = interpolate_z(z_a[0], z_b[0], frames, mode)
    # One class all along (repeated), or a blend from one class to the other; None when unconditional.
    labels = None if labels_a is None else np.repeat(labels_a, frames)
    if labels is not None and labels_a[0] != labels_b[0]:
        if generator.keras_generator is None:
            raise UsageError(
                f"interpolating between classes {labels_a[0]} and {labels_b[0]} needs a run directory or a .keras "
                "file: a SavedModel takes integer labels only"
            )
        labels = class_weights(int(labels_a[0]), int(labels_b[0]), frames, generator.num_classes)
    return keras.ops.convert_to_numpy(to_uint8(sample(generator, z, labels)))
