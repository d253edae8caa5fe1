"""PyTorch-only code: attention that never stores the whole `N x N_key` map, and the input gradient.

Imported only when the Keras backend is torch (through `keras_sagan.backend`). Its one strategy is
`"default"` (`make_strategy`): Keras 3.15's `keras.distribution` has no torch implementation.

Queries are cut into chunks; each chunk runs under `torch.utils.checkpoint` (non-reentrant), so
the backward pass recomputes a chunk's map instead of storing it, as `jax.checkpoint` does on the
JAX path: the graph holds the `(B, N, C)` tensors and one chunk's map at a time. Non-reentrant
checkpointing records the recomputation when a gradient is taken with `create_graph=True`, so
gradients of every order are exact (WGAN-GP differentiates D's input gradient). Without autograd
(inference, or no input that needs a gradient) the chunks run plainly.

Not `torch.nn.functional.scaled_dot_product_attention`: its fused CPU/GPU kernels run the softmax
in the input dtype, and SAGAN's softmax runs in float32 whatever the policy (a map row has up to N
entries, and half precision would lose softmax mass); its float32 math path holds the whole map.
"""

import torch
from torch.utils.checkpoint import checkpoint

from keras_sagan.backend import BackendError
from keras_sagan.backend.distribution import KerasDistribution
from keras_sagan.errors import bad_value

# Map entries per chunk, the JAX path's figures (backend/jax.py): 2**21 float32 entries (8 MiB)
# stay in a CPU's caches; on a GPU chunks are bounded by memory only, so it is not left idle.
BLOCK_ENTRIES = 2**21
GPU_BLOCK_ENTRIES = 2**27


def block_entries(device) -> int:
    """Map entries per chunk on `device`."""
    return GPU_BLOCK_ENTRIES if device.type == "cuda" else BLOCK_ENTRIES


def _attend(queries, keys, values):
    attention = torch.softmax(torch.einsum("bqc,bkc->bqk", queries, keys), dim=-1)
    return torch.einsum("bqk,bkc->bqc", attention, values)


def chunk_size(batch, num_queries, num_keys, device, queries_per_block=None) -> int:
    """Queries per chunk: `queries_per_block`, else as many as keep a chunk's map within `block_entries`."""
    if queries_per_block is None:
        queries_per_block = max(1, block_entries(device) // max(1, batch * num_keys))
    return max(1, min(int(queries_per_block), num_queries))


def chunked_attention(queries, keys, values, queries_per_block=None):
    """`softmax(q k^T) v` in float32, in query chunks recomputed in the backward pass.

    Args:
        queries: `(B, N, Cq)`; keys: `(B, Nk, Cq)`; values: `(B, Nk, C)`.
        queries_per_block: int or None. Queries per chunk; `None` sizes chunks to
            `block_entries` map entries for the whole batch.

    Returns `(B, N, C)` in `values.dtype`.
    """
    out_dtype = values.dtype
    q, k, v = (t.to(torch.float32) for t in (queries, keys, values))
    batch, num_queries, _ = q.shape
    chunk = chunk_size(batch, num_queries, k.shape[1], q.device, queries_per_block)
    recorded = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    outputs = []
    for start in range(0, num_queries, chunk):
        query_chunk = q[:, start : start + chunk]
        if recorded:
            outputs.append(checkpoint(_attend, query_chunk, k, v, use_reentrant=False))
        else:
            outputs.append(_attend(query_chunk, k, v))
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
    return out.to(out_dtype)


def input_gradient(fn, x, has_aux=False):
    """`(d sum(fn(x)) / dx, aux)` with the graph kept (`create_graph=True`), so it is differentiable again."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    result = fn(x)
    outputs, aux = result if has_aux else (result, None)
    (gradient,) = torch.autograd.grad(outputs.sum(), x, create_graph=True)
    return gradient, aux


STRATEGIES = ("default",)
"""The strategies that work on torch: Keras 3.15's `keras.distribution` has no torch implementation."""


def make_strategy(name: str, collective_timeout=None, processes: dict | None = None):
    """A one-device `KerasDistribution` for `"default"`; every other strategy is a one-line `BackendError`."""
    if name not in STRATEGIES:
        raise BackendError(
            bad_value(
                "strategy",
                name,
                f"one of {STRATEGIES} on the torch backend (Keras 3.15's keras.distribution has no torch "
                "data parallelism; use KERAS_BACKEND=jax or tensorflow for mirrored, jax for multihost)",
            )
        )
    return KerasDistribution()
