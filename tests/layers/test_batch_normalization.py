import keras
import numpy as np
import pytest
from layer_checks import assert_config_round_trip

from keras_sagan.layers import BatchNormalization


def _pair(shape, seed=1, **kwargs):
    """Keras' BatchNormalization and ours, built with the same random weights."""
    ours = BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    ours.build(shape)
    keras_bn.build(shape)
    rng = np.random.default_rng(seed)
    for a, b in zip(ours.weights, keras_bn.weights):
        value = rng.uniform(0.5, 2.0, size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return ours, keras_bn


def _train_call(layer, x):
    import tensorflow as tf

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        return [y] + tape.gradient(loss, [x] + layer.trainable_weights)

    x = tf.constant(x)
    results = run(x)
    op_types = {op.type for op in run.get_concrete_function(x).graph.get_operations()}
    return [np.asarray(r, "float32") for r in results], op_types


@pytest.mark.tensorflow
@pytest.mark.parametrize("center, scale", [(True, True), (False, False)])
def test_training_matches_keras_and_numpy_and_uses_the_fused_kernel(center, scale):
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 5, 4, 3)).astype("float32")
    ours, keras_bn = _pair(x.shape, center=center, scale=scale)
    gamma = np.asarray(ours.gamma) if scale else 1.0
    beta = np.asarray(ours.beta) if center else 0.0
    old_mean, old_variance = np.asarray(ours.moving_mean), np.asarray(ours.moving_variance)
    (y, *grads), op_types = _train_call(ours, x)
    (y_keras, *grads_keras), keras_op_types = _train_call(keras_bn, x)
    assert "FusedBatchNormV3" in op_types and "FusedBatchNormV3" not in keras_op_types
    # NumPy: biased batch variance, as Keras.
    flat = x.reshape(-1, 3).astype("float64")
    mean, variance = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(variance + 1e-5) * gamma + beta, atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean, 0.9 * old_mean + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, 0.9 * old_variance + 0.1 * variance, rtol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, keras_bn.moving_variance, rtol=1e-5)
    np.testing.assert_allclose(y, y_keras, atol=1e-5)
    for g, g_keras in zip(grads, grads_keras):
        np.testing.assert_allclose(g, g_keras, atol=1e-4 * max(1.0, np.abs(g_keras).max()))


@pytest.mark.tensorflow
def test_inference_and_other_layouts_are_keras():
    x = np.random.default_rng(2).normal(size=(4, 6, 3)).astype("float32")  # 3-D: not fused
    ours, keras_bn = _pair(x.shape)
    (y, *_), op_types = _train_call(ours, x)
    assert "FusedBatchNormV3" not in op_types
    np.testing.assert_allclose(y, _train_call(keras_bn, x)[0][0], atol=1e-5)
    images = np.random.default_rng(3).normal(size=(2, 3, 3, 4)).astype("float32")
    ours, keras_bn = _pair(images.shape, seed=4)
    np.testing.assert_allclose(ours(images, training=False), keras_bn(images, training=False), atol=1e-6)


@pytest.mark.tensorflow
def test_mixed_bfloat16_statistics_stay_float32():
    x = np.random.default_rng(5).normal(1.0, 2.0, size=(8, 4, 4, 6)).astype("float32")
    ours = BatchNormalization(momentum=0.9, epsilon=1e-5, dtype="mixed_bfloat16")
    ours.build(x.shape)
    import tensorflow as tf

    y = ours(tf.constant(x, "bfloat16"), training=True)
    assert y.dtype == "bfloat16" and ours.moving_mean.dtype == "float32"
    bf16 = np.asarray(tf.cast(tf.constant(x, "bfloat16"), "float32"), "float64").reshape(-1, 6)
    np.testing.assert_allclose(ours.moving_mean, 0.1 * bf16.mean(0), rtol=1e-5, atol=1e-6)


# Several replicas keep Keras' synchronised statistics: tests/training/test_sagan.py's
# test_two_replicas_equal_one_replica_with_the_same_global_batch fails if the fused kernel runs there.
# (A second MirroredStrategy with sync BN here would clash with its collective instance keys.)


def test_config_round_trip():
    restored = assert_config_round_trip(BatchNormalization(momentum=0.8, epsilon=1e-4, synchronized=True))
    assert isinstance(restored, BatchNormalization) and restored.momentum == 0.8
    assert restored.get_config()["synchronized"] is True  # kept on every backend (JAX needs no sync)


def test_training_equals_keras_on_any_backend():
    x = np.random.default_rng(6).normal(2.0, 3.0, size=(6, 5, 4, 3)).astype("float32")
    ours, keras_bn = _pair(x.shape, synchronized=False)
    initial_variance = np.asarray(ours.moving_variance).astype("float64")
    np.testing.assert_allclose(ours(x, training=True), keras_bn(x, training=True), atol=1e-5)
    for a, b in zip(ours.weights, keras_bn.weights):  # moving statistics advanced alike
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    flat = x.reshape(-1, 3).astype("float64")
    expected = 0.9 * initial_variance + 0.1 * flat.var(0)  # the biased variance, as Keras
    np.testing.assert_allclose(ours.moving_variance, expected, rtol=1e-5)
