"""The in-graph z sampler behind the `sample` signature, and the uint8 conversion."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_sagan import images
from keras_sagan.export import saved_model


def _z(num, seed, truncation, z_dim=64):
    return saved_model.sample_z(tf.constant(num), z_dim, tf.constant(seed, tf.int64), tf.constant(truncation)).numpy()


def test_shape_dtype_determinism():
    z = _z(8, 3, 0.0)
    assert z.shape == (8, 64) and z.dtype == np.float32
    np.testing.assert_array_equal(z, _z(8, 3, 0.0))
    assert not np.allclose(z, _z(8, 4, 0.0))
    np.testing.assert_array_equal(_z(8, 3, -1.0), z)  # truncation <= 0: plain normal


def test_untruncated_is_standard_normal():
    z = _z(1024, 0, 0.0)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    assert np.abs(z).max() > 3.0


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0])
def test_truncation_bounds_and_spread(t):
    z = _z(1024, 1, t)
    assert np.all(np.isfinite(z))
    assert np.abs(z).max() <= t
    # N(0, 1) conditioned on |z| <= t: variance 1 - 2 t phi(t) / (2 Phi(t) - 1).
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(t / math.sqrt(2))
    std = math.sqrt(1 - 2 * t * phi / mass)
    assert abs(z.std() - std) < 0.02 * std + 1e-3
    assert abs(z.mean()) < 0.02 * t + 1e-3


def test_large_truncation_is_nearly_normal():
    z = _z(1024, 2, 8.0)
    assert np.all(np.isfinite(z)) and np.abs(z).max() <= 8.0
    assert abs(z.std() - 1.0) < 0.03


def test_to_uint8():
    x = tf.constant([-1.5, -1.0, -0.999, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(images.to_uint8(x).numpy(), [0, 0, 0, 128, 191, 255, 255])
    assert images.to_uint8(x).dtype == tf.uint8
