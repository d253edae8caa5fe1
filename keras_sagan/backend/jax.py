"""JAX-only fast path: attention that never holds the whole `N x N_key` map.

Imported only when the Keras backend is JAX (through `keras_sagan.backend`).

Queries are cut into chunks that run one after another (`jax.lax.map`), and each chunk's
computation is wrapped in `jax.checkpoint`, so the backward pass recomputes a chunk's map instead
of storing it: both passes hold one chunk's map plus the `(B, N, C)` tensors. Plain JAX autodiff
does the rest, so gradients of every order are exact (WGAN-GP differentiates D's input gradient).

Not `keras.ops.dot_product_attention`: cuDNN's fused attention on a GPU takes only float16 and
bfloat16, and SAGAN's softmax runs in float32 (each map row has up to N entries, and half
precision would lose softmax mass); on a CPU it is a plain einsum that holds the whole map.
"""

import jax
import jax.numpy as jnp

# Map entries per chunk: 2**21 float32 entries (8 MiB) stay in a CPU's caches (the TensorFlow
# path's block size, measured there). On a GPU, chunks are bounded by memory only: 2**27 entries
# (512 MiB), so the GPU is not left idle between many small chunks.
BLOCK_ENTRIES = 2**21
GPU_BLOCK_ENTRIES = 2**27


def block_entries():
    """Map entries per chunk on the default JAX device."""
    return GPU_BLOCK_ENTRIES if jax.default_backend() == "gpu" else BLOCK_ENTRIES


def _attend(queries, keys, values):
    attention = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", queries, keys), axis=-1)
    return jnp.einsum("bqk,bkc->bqc", attention, values)


def chunk_size(batch, num_queries, num_keys, queries_per_block=None):
    """Queries per chunk: `queries_per_block`, else as many as keep a chunk's map within `block_entries()`."""
    if queries_per_block is None:
        queries_per_block = max(1, block_entries() // max(1, batch * num_keys))
    return max(1, min(int(queries_per_block), num_queries))


def chunked_attention(queries, keys, values, queries_per_block=None):
    """`softmax(q k^T) v` in float32, in query chunks recomputed in the backward pass.

    Args:
        queries: `(B, N, Cq)`; keys: `(B, Nk, Cq)`; values: `(B, Nk, C)`.
        queries_per_block: int or None. Queries per chunk; `None` sizes chunks to
            `block_entries()` map entries for the whole batch.

    Returns `(B, N, C)` in `values.dtype`.
    """
    out_dtype = values.dtype
    q, k, v = (jnp.asarray(t).astype(jnp.float32) for t in (queries, keys, values))
    batch, num_queries, _ = q.shape
    chunk = chunk_size(batch, num_queries, k.shape[1], queries_per_block)
    if chunk >= num_queries:
        return jax.checkpoint(_attend)(q, k, v).astype(out_dtype)
    num_chunks = -(-num_queries // chunk)
    padded = jnp.pad(q, ((0, 0), (0, num_chunks * chunk - num_queries), (0, 0)))
    chunks = jnp.swapaxes(padded.reshape(batch, num_chunks, chunk, q.shape[-1]), 0, 1)
    attend_chunk = jax.checkpoint(lambda query_chunk: _attend(query_chunk, k, v))
    out = jax.lax.map(attend_chunk, chunks)  # (num_chunks, B, chunk, C), one chunk at a time
    out = jnp.swapaxes(out, 0, 1).reshape(batch, num_chunks * chunk, v.shape[-1])[:, :num_queries]
    return out.astype(out_dtype)
