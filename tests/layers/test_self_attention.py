import keras
import numpy as np
import pytest
from backend_utils import layer_gradients, penalty_gradients
from keras import ops
from layer_checks import assert_config_round_trip

from keras_sagan.layers import SelfAttention


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _randomize(layer, seed):
    rng = np.random.default_rng(seed)
    for w in layer.trainable_weights:
        w.assign(rng.normal(scale=0.3, size=w.shape).astype("float32"))
    layer.gamma.assign(1.0)


def test_reference_variant_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 16)).astype("float32")
    layer = SelfAttention(variant="reference")
    layer.build(x.shape)
    _randomize(layer, 1)
    out, attention = layer(x, return_attention=True)

    flat = x.reshape(2, 24, 16).astype("float64")

    def conv(sub):
        return flat @ np.asarray(sub.kernel)[0, 0] + np.asarray(sub.bias)

    q, k, v = conv(layer.query), conv(layer.key), conv(layer.value)
    assert q.shape[-1] == 2 and v.shape[-1] == 16  # C/8 and C
    a = _softmax(q @ k.transpose(0, 2, 1))  # softmax over keys
    expected = (a @ v + flat).reshape(x.shape)  # out_i = sum_j A[i, j] v_j, gamma = 1
    np.testing.assert_allclose(attention, a, atol=1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def _max_pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_sagan_variant_matches_numpy():
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 16)).astype("float32")
    layer = SelfAttention()  # "sagan": SN convs, C/8, C/2, pooling, output conv
    layer.build(x.shape)
    _randomize(layer, 3)
    out, attention = layer(x, training=False, return_attention=True)

    def sn_kernel(sub):  # eval mode: sigma = ||u W^T|| / ||u|| with the stored u
        w = np.asarray(sub.layer.kernel)[0, 0].astype("float64")
        u = np.asarray(sub.u).astype("float64")
        return w / (np.linalg.norm(u @ w.T) / np.linalg.norm(u))

    q = x.astype("float64") @ sn_kernel(layer.query)
    k = _max_pool(x.astype("float64") @ sn_kernel(layer.key))
    v = _max_pool(x.astype("float64") @ sn_kernel(layer.value))
    q, k, v = q.reshape(2, 16, 2), k.reshape(2, 4, 2), v.reshape(2, 4, 8)
    a = _softmax(q @ k.transpose(0, 2, 1))
    o = (a @ v).reshape(2, 4, 4, 8) @ sn_kernel(layer.output_projection)
    np.testing.assert_allclose(attention, a, atol=1e-5)
    np.testing.assert_allclose(out, o + x, atol=1e-4)
    assert layer.output_projection.layer.use_bias is False


@pytest.mark.parametrize(
    "variant, pooling, key_positions", [("sagan", None, 16), ("reference", None, 64), ("reference", True, 16)]
)
def test_map_shape_rows_sum_to_one_and_gamma_zero_is_identity(variant, pooling, key_positions):
    x = np.random.default_rng(4).normal(size=(3, 8, 8, 24)).astype("float32")
    layer = SelfAttention(variant=variant, pooling=pooling)
    out, attention = layer(x, return_attention=True)
    assert attention.shape == (3, 64, key_positions)
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, x)  # gamma starts at 0


@pytest.mark.parametrize("variant", ["sagan", "reference"])
def test_query_chunking_equals_full_attention(variant):
    x = np.random.default_rng(5).normal(size=(2, 8, 12, 16)).astype("float32")
    full = SelfAttention(variant=variant, query_chunk_size=None)  # the whole map, plain autodiff
    full.build(x.shape)
    _randomize(full, 6)
    chunked = SelfAttention(variant=variant, query_chunk_size=10)  # 96 = 9 chunks of 10 + 6
    chunked.build(x.shape)
    for a, b in zip(chunked.weights, full.weights):
        a.assign(np.asarray(b))
    np.testing.assert_allclose(chunked(x), full(x), atol=1e-5)
    # Gradients through the recomputed chunks equal the full path's too.
    grads = []
    for layer in (full, chunked):
        input_grad, weight_grads = layer_gradients(layer, x, lambda out: ops.sum(ops.sin(out)))
        grads.append([input_grad] + list(weight_grads))
    scale = max(float(np.abs(g).max()) for g in grads[0])
    for g_full, g_chunked in zip(*grads):  # float32 round-off relative to the largest gradient
        np.testing.assert_allclose(g_chunked, g_full, atol=1e-5 * scale)


def test_any_size_and_channel_count_and_errors():
    layer = SelfAttention()
    assert layer(np.zeros((1, 6, 10, 40), "float32")).shape == (1, 6, 10, 40)
    with pytest.raises(ValueError, match="at least 8 input channels.*4"):
        SelfAttention()(np.zeros((1, 4, 4, 4), "float32"))
    with pytest.raises(ValueError, match="variant must be one of.*'bogus'"):
        SelfAttention(variant="bogus")
    with pytest.raises(ValueError, match="even height and width"):
        SelfAttention()(np.zeros((1, 5, 4, 8), "float32"))
    with pytest.raises(ValueError, match='query_chunk_size must be None, "auto" or an int >= 1; received 0'):
        SelfAttention(query_chunk_size=0)


def test_reference_parameter_count_and_config():
    layer = SelfAttention(variant="reference")
    layer.build((None, 16, 16, 128))
    # PyTorch Self_Attn(128): 2 * (128*16 + 16) + (128*128 + 128) + 1 (gamma)
    assert layer.count_params() == 20641
    restored = assert_config_round_trip(SelfAttention(variant="reference", pooling=True, query_chunk_size=64))
    assert restored.variant == "reference" and restored.pooling is True and restored.query_chunk_size == 64


def test_fit_step_moves_gamma():
    inputs = keras.Input((8, 8, 16))
    model = keras.Model(inputs, SelfAttention()(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(7).normal(size=(4, 8, 8, 16)).astype("float32")
    model.fit(x, x * 2.0, epochs=1, verbose=0)
    assert float(model.layers[-1].gamma) != 0.0


@pytest.mark.parametrize("chunk", ["auto", 10])
def test_second_order_gradients_match_autodiff(chunk):
    # WGAN-GP differentiates D's input gradient again; the memory-efficient path (a hand-written
    # backward pass on TF, rematerialised chunks on JAX) must differentiate like plain autodiff.
    x = np.random.default_rng(8).normal(size=(2, 6, 8, 16)).astype("float32")
    layer = SelfAttention(variant="reference", query_chunk_size=chunk)
    layer.build(x.shape)
    _randomize(layer, 9)
    results = []
    for return_attention in (True, False):  # True runs the plain autodiff path

        def loss(out, return_attention=return_attention):
            return ops.sum(ops.sin(out[0] if return_attention else out))

        input_grad, weight_grads = penalty_gradients(layer, x, loss, return_attention=return_attention)
        results.append([input_grad] + list(weight_grads))
    scale = max(float(np.abs(g).max()) for g in results[0])
    for autodiff, custom in zip(*results):
        np.testing.assert_allclose(custom, autodiff, atol=1e-5 * scale)
