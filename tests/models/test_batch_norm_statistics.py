"""Tests for keras_sagan.models.batch_norm_statistics against NumPy: standing statistics, batch-statistics sampling."""

import keras
import numpy as np
import pytest

import keras_sagan
from keras_sagan.models import batch_norm_statistics as bns


class Toy(keras.Model):
    """z -> Dense(4) -> BatchNorm: small enough to compute every statistic by hand."""

    def __init__(self):
        super().__init__()
        self.z_dim, self.num_classes = 3, None
        self.dense = keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(seed=1))
        self.norm = keras_sagan.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)

    def call(self, z, labels=None, training=None):
        return self.norm(self.dense(z), training=training)


def _toy():
    model = Toy()
    model(np.zeros((1, 3), "float32"), training=False)
    model.norm.gamma.assign([1.0, 2.0, 0.5, 1.5])
    model.norm.beta.assign([0.0, 0.1, -0.2, 0.3])
    return model


def test_standing_statistics_are_the_plain_average_of_batch_statistics():
    model = _toy()
    assert bns.recalibrate(model, num_batches=5, batch_size=7, seed=3) == 1
    # The same noise, drawn again from a SeedGenerator of the same seed, and the statistics in NumPy.
    seed = keras.random.SeedGenerator(3)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (model.dense.kernel, model.dense.bias))
    means, variances = [], []
    for _ in range(5):
        h = keras.ops.convert_to_numpy(keras.random.normal((7, 3), seed=seed)) @ kernel + bias
        means.append(h.mean(0))
        variances.append(h.var(0))  # biased, as Keras' moving variance
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.norm.moving_mean), np.mean(means, 0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.norm.moving_variance), np.mean(variances, 0), rtol=1e-5)
    assert model.norm.momentum == 0.9  # put back


def test_sampling_with_batch_statistics_normalises_by_the_batch_and_changes_nothing():
    model = _toy()
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
    z = np.random.default_rng(0).standard_normal((6, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(bns.sample_with_batch_statistics(model, z))
    h = z @ keras.ops.convert_to_numpy(model.dense.kernel) + keras.ops.convert_to_numpy(model.dense.bias)
    expected = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3) * [1.0, 2.0, 0.5, 1.5] + [0.0, 0.1, -0.2, 0.3]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    for value, variable in zip(before, model.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)


def test_recalibrating_a_generator_keeps_spectral_norm_vectors():
    g = keras_sagan.Generator(image_size=32, conv_dim=8, z_dim=16, channels=1)
    g.build()
    kept = {v.path: keras.ops.convert_to_numpy(v).copy() for v in g.non_trainable_variables if "moving" not in v.path}
    moving = {v.path: keras.ops.convert_to_numpy(v).copy() for v in g.non_trainable_variables if "moving" in v.path}
    assert bns.recalibrate(g, num_batches=2, batch_size=4) == len(bns.batch_norm_layers(g)) > 0
    for v in g.non_trainable_variables:
        if v.path in kept:
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), kept[v.path])
        else:
            assert not np.allclose(keras.ops.convert_to_numpy(v), moving[v.path])


def test_bad_arguments_are_one_line():
    with pytest.raises(ValueError, match=r"`num_batches` must be an int >= 1; received: num_batches=0"):
        bns.recalibrate(_toy(), num_batches=0)
