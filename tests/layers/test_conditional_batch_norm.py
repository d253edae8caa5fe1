import numpy as np
import pytest
from layer_checks import assert_config_round_trip

from keras_sagan.layers import ConditionalBatchNormalization


def test_matches_numpy_batch_norm_with_per_class_affine():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(6, 4, 4, 5)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    layer = ConditionalBatchNormalization(3)
    layer.build(x.shape, labels.shape)
    gamma = rng.normal(size=(3, 5)).astype("float32")
    beta = rng.normal(size=(3, 5)).astype("float32")
    layer.class_gamma.assign(gamma)
    layer.class_beta.assign(beta)
    out = layer(x, labels, training=True)
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    normalized = (x - mean) / np.sqrt(var + 1e-5)
    expected = normalized * gamma[labels][:, None, None] + beta[labels][:, None, None]
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # moving statistics moved towards the batch statistics (momentum 0.9)
    np.testing.assert_allclose(layer.batch_norm.moving_mean, 0.1 * mean, atol=1e-5)


def test_untrained_layer_is_plain_batch_norm_and_inference_uses_moving_stats():
    x = np.random.default_rng(1).normal(size=(4, 2, 2, 3)).astype("float32")
    layer = ConditionalBatchNormalization(5)
    out = layer(x, np.array([4, 3, 2, 1]), training=False)
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5), atol=1e-6)  # moving mean 0, var 1


def test_config_and_errors():
    restored = assert_config_round_trip(ConditionalBatchNormalization(7, momentum=0.5, synchronized=False))
    assert restored.num_classes == 7 and restored.momentum == 0.5 and restored.synchronized is False
    with pytest.raises(ValueError, match="num_classes.*0"):
        ConditionalBatchNormalization(0)
