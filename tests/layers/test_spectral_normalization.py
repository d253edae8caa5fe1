import keras
import numpy as np
import pytest
from backend_utils import layer_gradients
from keras import ops
from layer_checks import assert_config_round_trip

from keras_sagan.layers import SpectralNormalization

CASES = {
    "dense": (lambda: keras.layers.Dense(7), (3, 5)),
    "conv2d": (lambda: keras.layers.Conv2D(6, 3, padding="same"), (2, 8, 8, 4)),
    "conv2d_transpose": (lambda: keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same"), (2, 4, 4, 5)),
}


def _matrix(kernel):
    kernel = np.asarray(kernel)
    return kernel.reshape(-1, kernel.shape[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigma_converges_to_largest_singular_value(case):
    keras.utils.set_random_seed(0)
    make, shape = CASES[case]
    layer = SpectralNormalization(make())
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    for _ in range(60):
        layer(x, training=True)
    raw = _matrix(layer.layer.kernel)
    np.testing.assert_allclose(float(layer.spectral_norm()), np.linalg.svd(raw, compute_uv=False)[0], rtol=1e-4)
    normalized = _matrix(layer.normalized_kernel())
    assert abs(np.linalg.svd(normalized, compute_uv=False)[0] - 1.0) < 1e-3


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_equals_wrapped_layer_with_normalized_kernel(case):
    make, shape = CASES[case]
    layer = SpectralNormalization(make())
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    layer(x, training=True)
    layer.layer.bias.assign(np.linspace(-1, 1, layer.layer.bias.shape[0]).astype("float32"))
    expected_layer = make()
    expected_layer.build(shape)
    expected_layer.kernel.assign(layer.normalized_kernel())
    expected_layer.bias.assign(layer.layer.bias)
    np.testing.assert_allclose(layer(x, training=False), expected_layer(x), atol=1e-5)


def test_embedding_rows_are_normalized():
    keras.utils.set_random_seed(0)
    layer = SpectralNormalization(keras.layers.Embedding(10, 6), power_iterations=5)
    ids = np.array([0, 3, 9])
    for _ in range(100):
        out = layer(ids, training=True)
    table = np.asarray(layer.normalized_kernel())
    assert abs(np.linalg.svd(table, compute_uv=False)[0] - 1.0) < 1e-3
    np.testing.assert_allclose(out, table[ids], atol=1e-6)


def test_training_false_changes_no_variable_and_kernel_is_never_overwritten():
    layer = SpectralNormalization(keras.layers.Conv2D(4, 3))
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype("float32")
    layer(x, training=False)
    before = [w.numpy() for w in layer.weights]
    layer(x, training=False)
    for w, b in zip(layer.weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)
    kernel, u = layer.layer.kernel.numpy(), layer.u.numpy()
    layer(x, training=True)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)  # never overwritten
    assert not np.array_equal(layer.u.numpy(), u)  # the power iteration ran


def test_gradient_flows_through_sigma_matches_finite_difference():
    rng = np.random.default_rng(3)
    layer = SpectralNormalization(keras.layers.Dense(4, use_bias=False))
    x = rng.normal(size=(5, 3)).astype("float32")
    r = rng.normal(size=(5, 4))
    layer.build(x.shape)
    u0 = np.asarray(layer.u).astype("float64")
    w0 = np.asarray(layer.layer.kernel).astype("float64")

    _, (grad,) = layer_gradients(layer, x, lambda y: ops.sum(y * ops.convert_to_tensor(r.astype("float32"))))
    grad = np.asarray(grad)

    # NumPy reference: one power iteration from u0, then u and v are constants.
    v = u0 @ w0.T
    v /= np.linalg.norm(v)
    u = v @ w0
    u /= np.linalg.norm(u)

    def objective(w):
        sigma = (v @ w @ u.T).item()
        return float(np.sum((x.astype("float64") @ (w / sigma)) * r))

    numeric = np.zeros_like(w0)
    eps = 1e-5
    for idx in np.ndindex(*w0.shape):
        plus, minus = w0.copy(), w0.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (objective(plus) - objective(minus)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)
    # Without sigma's gradient (what keras.layers.SpectralNormalization gives)
    # the result is clearly different, so this test can fail.
    sigma = (v @ w0 @ u.T).item()
    no_sigma_grad = x.T.astype("float64") @ r / sigma
    assert np.abs(no_sigma_grad - numeric).max() > 1e-2


@pytest.mark.tensorflow
def test_u_update_under_mirrored_strategy_matches_single_device():
    import tensorflow as tf

    x = np.random.default_rng(4).normal(size=(4, 6)).astype("float32")
    single = SpectralNormalization(keras.layers.Dense(5))
    single.build(x.shape)
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    with strategy.scope():
        mirrored = SpectralNormalization(keras.layers.Dense(5))
        mirrored.build(x.shape)
    for target, source in zip(mirrored.weights, single.weights):
        target.assign(np.asarray(source))

    @tf.function
    def step(inputs):
        return strategy.run(lambda t: mirrored(t, training=True), args=(inputs,))

    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).repeat(3))
    for batch in dataset:
        step(batch)
        single(x, training=True)
    replicas = [np.asarray(v) for v in strategy.experimental_local_results(mirrored.u.value)]
    assert len(replicas) == 2
    np.testing.assert_allclose(replicas[0], replicas[1], atol=0)
    np.testing.assert_allclose(replicas[0], np.asarray(single.u), atol=1e-6)


def test_config_round_trip_and_errors():
    layer = SpectralNormalization(keras.layers.Conv2D(4, 3), power_iterations=3, epsilon=1e-8)
    restored = assert_config_round_trip(layer)
    assert restored.power_iterations == 3 and isinstance(restored.layer, keras.layers.Conv2D)
    with pytest.raises(ValueError, match="received Dropout"):
        SpectralNormalization(keras.layers.Dropout(0.1))
    with pytest.raises(ValueError, match="power_iterations.*received 0"):
        SpectralNormalization(keras.layers.Dense(2), power_iterations=0)


def test_more_power_iterations_converge_faster():
    x = np.ones((1, 8), "float32")
    errors = []
    for iterations in (1, 5):
        keras.utils.set_random_seed(0)
        layer = SpectralNormalization(keras.layers.Dense(8), power_iterations=iterations)
        layer(x, training=True)
        true_sigma = np.linalg.svd(np.asarray(layer.layer.kernel), compute_uv=False)[0]
        errors.append(abs(float(layer.spectral_norm()) - true_sigma))
    assert errors[1] < errors[0]


def test_inference_sigma_does_not_depend_on_the_length_of_u():
    # The initial u is a random normal vector, not unit length: an untrained
    # layer in inference mode must still divide by a sigma estimate, not by
    # ||u|| times one.
    keras.utils.set_random_seed(0)
    layer = SpectralNormalization(keras.layers.Dense(64))
    layer.build((None, 64))
    true_sigma = np.linalg.svd(layer.layer.kernel.numpy(), compute_uv=False)[0]
    estimate = float(layer.spectral_norm())
    assert 0.3 * true_sigma < estimate <= true_sigma * (1 + 1e-5)
    layer.u.assign(layer.u.numpy() * 5.0)
    np.testing.assert_allclose(float(layer.spectral_norm()), estimate, rtol=1e-6)
