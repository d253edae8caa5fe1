"""The JAX fast path: chunked attention under `jax.checkpoint` equals NumPy, gradients of two orders included."""

import numpy as np
import pytest

pytestmark = pytest.mark.jax  # JAX backend only (conftest.py)

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from keras_sagan.backend import jax as jax_backend  # noqa: E402


def _numpy_attention_and_grads(q, k, v):
    """out = softmax(q k^T) v and, for loss = sum(sin(out)), dq, dk, dv (float64)."""
    q, k, v = (t.astype("float64") for t in (q, k, v))
    logits = q @ k.transpose(0, 2, 1)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    out = a @ v
    d_out = np.cos(out)
    d_a = d_out @ v.transpose(0, 2, 1)
    d_logits = a * (d_a - (d_a * a).sum(-1, keepdims=True))  # the softmax Jacobian, written out
    return out, d_logits @ k, d_logits.transpose(0, 2, 1) @ q, a.transpose(0, 2, 1) @ d_out


@pytest.mark.parametrize(
    "batch, queries_per_block, block_entries",
    [
        (3, 7, 2**21),  # 24 queries in chunks of 7: 4 chunks, the last padded
        (2, None, 2 * 20 * 5),  # sized by the block: 5 queries per chunk
        (2, None, 2**21),  # one chunk
    ],
)
def test_chunked_attention_matches_numpy_with_gradients(monkeypatch, batch, queries_per_block, block_entries):
    monkeypatch.setattr(jax_backend, "BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(10)
    q, k, v = (rng.normal(size=(batch, n, c)).astype("float32") for n, c in ((24, 3), (20, 3), (20, 6)))

    def loss(q, k, v):
        return jnp.sum(jnp.sin(jax_backend.chunked_attention(q, k, v, queries_per_block)))

    out = jax.jit(lambda q, k, v: jax_backend.chunked_attention(q, k, v, queries_per_block))(q, k, v)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)
    for got, want in zip([out, *grads], _numpy_attention_and_grads(q, k, v)):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_second_order_gradients_equal_plain_autodiff():
    rng = np.random.default_rng(11)
    q, k, v = (rng.normal(size=(2, n, c)).astype("float32") for n, c in ((24, 3), (20, 3), (20, 6)))

    def plain(q, k, v):
        return jnp.einsum("bqk,bkc->bqc", jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k), axis=-1), v)

    def penalty(attend):
        def input_grad_norm(k, v):
            g = jax.grad(lambda q: jnp.sum(jnp.sin(attend(q, k, v))))(q)
            return jnp.sum(g**2)

        return jax.grad(input_grad_norm, argnums=(0, 1))(k, v)

    chunked = penalty(lambda q, k, v: jax_backend.chunked_attention(q, k, v, 5))
    for got, want in zip(chunked, penalty(plain)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_chunk_sizes_bound_the_map():
    entries = jax_backend.BLOCK_ENTRIES
    assert jax_backend.chunk_size(64, 1024, 1024) == entries // (64 * 1024)  # the 32x32 map at batch 64: 32
    assert jax_backend.chunk_size(2, 64, 64) == 64  # a small map: one chunk
    assert jax_backend.chunk_size(64, 1024, 1024, 100) == 100  # explicit
    assert jax_backend.chunk_size(1, 10, 10, 100) == 10  # never more than the queries
    assert jax_backend.chunk_size(10**6, 4096, 4096) == 1  # at least one query
