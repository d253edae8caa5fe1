"""`keras_sagan.interpolation`: lerp/slerp against hand computations, class blends against NumPy, GIFs, walks."""

import io

import keras
import numpy as np
import pytest
from PIL import Image

from keras_sagan import interpolation
from keras_sagan.errors import UsageError
from keras_sagan.export.loading import load_generator
from keras_sagan.export.saved_model import sample_z
from keras_sagan.images import to_uint8
from keras_sagan.layers.conditional_batch_norm import ConditionalBatchNormalization


def test_lerp_is_the_straight_line():
    a, b = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.0, -1.5])
    z = interpolation.interpolate_z(a, b, 5, "lerp")
    expected = np.stack([a + (b - a) * t for t in (0, 0.25, 0.5, 0.75, 1.0)])
    np.testing.assert_allclose(z, expected, rtol=1e-6)


def test_slerp_moves_along_the_great_circle():
    rng = np.random.default_rng(0)
    a = rng.normal(size=16)
    b = rng.normal(size=16)
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms: slerp stays on the sphere of that radius
    # An independent construction: the orthonormal basis of the plane of a and b, and the angle between them.
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    angle = np.arccos(b @ e1 / np.linalg.norm(b))
    z = interpolation.interpolate_z(a, b, 7, "slerp")
    for t, row in zip(np.linspace(0, 1, 7), z):
        expected = np.linalg.norm(a) * (np.cos(t * angle) * e1 + np.sin(t * angle) * e2)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-5)
    lerp_middle = interpolation.interpolate_z(a, b, 3, "lerp")[1]
    assert np.linalg.norm(lerp_middle) < np.linalg.norm(z[3]) - 0.1  # the straight line's middle shrinks


def test_slerp_of_parallel_vectors_is_the_line():
    a = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        interpolation.interpolate_z(a, 2 * a, 3, "slerp"), interpolation.interpolate_z(a, 2 * a, 3, "lerp"), rtol=1e-6
    )


@pytest.mark.parametrize("frames", [1, 121, True, 2.5])
def test_frame_count_is_capped(frames):
    with pytest.raises(UsageError, match="frames"):
        interpolation.interpolate_z(np.zeros(2), np.ones(2), frames, "lerp")


def test_unknown_mode_is_refused():
    with pytest.raises(UsageError, match="mode"):
        interpolation.interpolate_z(np.zeros(2), np.ones(2), 3, "cubic")


def test_class_weights_and_their_batch_norm_blend():
    weights = interpolation.class_weights(0, 2, 3, 4)
    np.testing.assert_allclose(weights, [[1, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 1, 0]])
    layer = ConditionalBatchNormalization(4)
    x = np.random.default_rng(1).normal(size=(3, 2, 2, 5)).astype("float32")
    layer.build(x.shape)
    rng = np.random.default_rng(2)
    gamma, beta = rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 5)).astype("float32")
    layer.class_gamma.assign(gamma)
    layer.class_beta.assign(beta)
    out = keras.ops.convert_to_numpy(layer(x, weights, training=False))
    normalized = x / np.sqrt(1.0 + 1e-5)  # the fresh moving statistics: mean 0, variance 1
    expected = normalized * (weights @ gamma)[:, None, None, :] + (weights @ beta)[:, None, None, :]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(UsageError, match="label_b"):
        interpolation.class_weights(0, 4, 3, 4)


def test_one_hot_class_weights_equal_integer_labels(conditional):
    generator, _ = conditional
    z = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    labels = np.array([0, 2, 1])
    by_label = keras.ops.convert_to_numpy(generator(z, labels, training=False))
    by_weights = keras.ops.convert_to_numpy(generator(z, np.eye(3, dtype="float32")[labels], training=False))
    np.testing.assert_allclose(by_weights, by_label, atol=1e-5)


def _frames(data):
    gif = Image.open(io.BytesIO(data))
    out = []
    for index in range(gif.n_frames):
        gif.seek(index)
        out.append(np.asarray(gif.convert("RGB")))
    return np.stack(out)


def test_gif_frames_grey_exact_and_colour_close():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8)
    np.testing.assert_array_equal(_frames(interpolation.gif_bytes(grey))[..., :1], grey)
    colour = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)  # 64 pixels: fits one 256-colour palette
    np.testing.assert_array_equal(_frames(interpolation.gif_bytes(colour)), colour)
    with pytest.raises(UsageError, match="uint8"):
        interpolation.gif_bytes(colour.astype("float32"))


def test_walk_ends_are_the_seeds_samples(unconditional, conditional):
    generator, path = unconditional
    loaded = load_generator(path)
    frames = interpolation.walk(loaded, 4, 9, 5, "slerp")
    assert frames.shape == (5, 32, 32, 3)
    for seed, frame in ((4, frames[0]), (9, frames[-1])):
        expected = np.asarray(loaded.sample(1, seed=seed)["images_uint8"])[0]  # the serving graph's own z
        np.testing.assert_array_equal(frame, expected)
    assert not np.array_equal(frames[2], interpolation.walk(loaded, 4, 9, 5, "lerp")[2])
    # A conditional walk between two classes: its ends are the integer-labelled samples.
    generator, path = conditional
    loaded = load_generator(path)
    frames = interpolation.walk(loaded, 1, 1, 4, "lerp", label_a=0, label_b=2)
    z = interpolation.seed_z(1, 16)[None]
    for label, frame in ((0, frames[0]), (2, frames[-1])):
        expected = keras.ops.convert_to_numpy(to_uint8(generator(z, np.array([label]), training=False)))[0]
        assert np.abs(frame.astype(int) - expected).max() <= 1  # the blend's matmul vs the gather: float rounding
    assert not np.array_equal(frames[1], frames[0])
    with pytest.raises(UsageError, match="unconditional"):
        interpolation.walk(load_generator(unconditional[1]), 0, 1, 3, label_a=1)


def test_seed_z_is_the_sample_signatures_noise():
    np.testing.assert_array_equal(interpolation.seed_z(7, 16, 0.5), sample_z(1, 16, 7, 0.5).numpy()[0])
    assert np.abs(interpolation.seed_z(7, 16, 0.5)).max() <= 0.5
