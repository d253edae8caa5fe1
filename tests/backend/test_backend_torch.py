"""The torch path: attention chunks under `torch.utils.checkpoint` equal NumPy and hold no whole map."""

import numpy as np
import pytest
from backend_utils import numpy_attention_and_grads

pytestmark = pytest.mark.torch  # torch backend only (conftest.py)

torch = pytest.importorskip("torch")

from keras_sagan import backend  # noqa: E402
from keras_sagan.backend import torch as torch_backend  # noqa: E402


def _qkv(batch, seed):
    rng = np.random.default_rng(seed)
    shapes = ((24, 3), (20, 3), (20, 6))
    return [torch.tensor(rng.normal(size=(batch, n, c)).astype("float32"), requires_grad=True) for n, c in shapes]


@pytest.mark.parametrize(
    "batch, queries_per_block, block_entries",
    [
        (3, 7, 2**21),  # 24 queries in chunks of 7: 4 chunks, the last shorter
        (2, None, 2 * 20 * 5),  # sized by the block: 5 queries per chunk
        (2, None, 2**21),  # one chunk
    ],
)
def test_chunked_attention_matches_numpy_with_gradients(monkeypatch, batch, queries_per_block, block_entries):
    monkeypatch.setattr(torch_backend, "BLOCK_ENTRIES", block_entries)
    q, k, v = _qkv(batch, 10)
    out = torch_backend.chunked_attention(q, k, v, queries_per_block)
    grads = torch.autograd.grad(torch.sum(torch.sin(out)), (q, k, v))
    want = numpy_attention_and_grads(*(t.detach().numpy() for t in (q, k, v)))
    for got, expected in zip([out, *grads], want):
        np.testing.assert_allclose(got.detach().numpy(), expected, atol=2e-5)
    assert backend.attention(q, k, v, queries_per_block).shape == out.shape  # the dispatcher takes this path


def test_second_order_gradients_equal_plain_autodiff():
    def plain(q, k, v):
        return torch.einsum("bqk,bkc->bqc", torch.softmax(torch.einsum("bqc,bkc->bqk", q, k), dim=-1), v)

    def penalty(attend):
        q, k, v = _qkv(2, 11)
        (g,) = torch.autograd.grad(torch.sum(torch.sin(attend(q, k, v))), q, create_graph=True)
        return torch.autograd.grad(torch.sum(g**2), (k, v))

    chunked = penalty(lambda q, k, v: torch_backend.chunked_attention(q, k, v, 5))
    for got, want in zip(chunked, penalty(plain)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def _largest_saved_tensor(fn):
    """The element count of the largest tensor autograd keeps for the backward pass of `fn()`."""
    sizes = [0]

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return out, max(sizes)


def test_the_backward_pass_holds_no_whole_map():
    batch, n = 2, 256  # a 16x16 feature map: the whole map has 2 * 256 * 256 entries
    rng = np.random.default_rng(12)
    q, k, v = (torch.tensor(rng.normal(size=(batch, n, c)).astype("float32"), requires_grad=True) for c in (4, 4, 8))
    whole_map = batch * n * n
    _, plain = _largest_saved_tensor(lambda: backend.full_attention(q, k, v)[0])
    assert plain >= whole_map  # the check can fail: plain autodiff stores the map
    out, chunked = _largest_saved_tensor(lambda: torch_backend.chunked_attention(q, k, v, 32))
    assert chunked <= batch * n * 8  # the (B, N, C) inputs, never a map
    torch.sum(out).backward()  # the recomputation in the backward pass works
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_chunk_sizes_bound_the_map():
    cpu, entries = torch.device("cpu"), torch_backend.BLOCK_ENTRIES
    assert torch_backend.chunk_size(64, 1024, 1024, cpu) == entries // (64 * 1024)  # 32x32 at batch 64: 32
    assert torch_backend.chunk_size(2, 64, 64, cpu) == 64  # a small map: one chunk
    assert torch_backend.chunk_size(64, 1024, 1024, cpu, 100) == 100  # explicit
    assert torch_backend.chunk_size(1, 10, 10, cpu, 100) == 10  # never more than the queries
    assert torch_backend.chunk_size(10**6, 4096, 4096, cpu) == 1  # at least one query
    assert torch_backend.block_entries(torch.device("cuda")) == torch_backend.GPU_BLOCK_ENTRIES


def test_input_gradient_stays_differentiable():
    w = torch.tensor([1.5, -2.0], requires_grad=True)
    x = torch.tensor([[0.5, 2.0]])
    grad, aux = backend.input_gradient(lambda t: (torch.sum(w * t**2, dim=-1), "aux"), x, has_aux=True)
    np.testing.assert_allclose(grad.detach().numpy(), [[1.5, -8.0]])  # d/dx w x^2 = 2 w x
    assert aux == "aux"
    (second,) = torch.autograd.grad(torch.sum(grad), w)  # d/dw sum(2 w x) = 2 x
    np.testing.assert_allclose(second.numpy(), [1.0, 4.0])
