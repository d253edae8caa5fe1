"""The TensorFlow fast paths and private TensorFlow/Keras API hooks (`keras_sagan/backend/tensorflow.py`)."""

import keras
import numpy as np
import pytest

from keras_sagan import backend

pytestmark = pytest.mark.tensorflow  # TensorFlow backend only (conftest.py)

tf = pytest.importorskip("tensorflow")
from keras_sagan.backend import tensorflow as tf_backend  # noqa: E402


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _numpy_attention_and_grads(q, k, v):
    """out = softmax(q k^T) v and, for loss = sum(sin(out)), dq, dk, dv (float64)."""
    q, k, v = (t.astype("float64") for t in (q, k, v))
    a = _softmax(q @ k.transpose(0, 2, 1))
    out = a @ v
    d_out = np.cos(out)
    d_a = d_out @ v.transpose(0, 2, 1)
    d_logits = a * (d_a - (d_a * a).sum(-1, keepdims=True))  # the softmax Jacobian, written out
    return out, d_logits @ k, d_logits.transpose(0, 2, 1) @ q, a.transpose(0, 2, 1) @ d_out


@pytest.mark.parametrize(
    "batch, queries_per_block, block_entries, static_batch",
    [
        (5, None, 2 * 24 * 20, True),  # blocks of 2 examples: 3 blocks, the last padded
        (5, None, 2 * 24 * 20, False),  # the same with the batch unknown when traced
        (3, None, 7 * 20, False),  # one example per block, chunks of 7 queries: 4 chunks, the last padded
        (2, 5, 2**21, True),  # explicit chunk size; both examples in one block
    ],
)
def test_blocked_attention_matches_numpy(monkeypatch, batch, queries_per_block, block_entries, static_batch):
    monkeypatch.setattr(tf_backend, "BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(10)
    q, k, v = (rng.normal(size=(batch, n, c)).astype("float32") for n, c in ((24, 3), (20, 3), (20, 6)))
    expected = _numpy_attention_and_grads(q, k, v)

    def run(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = tf_backend.blocked_attention(q, k, v, queries_per_block=queries_per_block)
            loss = tf.reduce_sum(tf.sin(out))
        return [out] + tape.gradient(loss, [q, k, v])

    spec = [tf.TensorSpec((batch if static_batch else None,) + t.shape[1:], tf.float32) for t in (q, k, v)]
    results = tf.function(run, input_signature=spec)(q, k, v)
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_block_shapes_bound_the_map():
    entries = tf_backend.BLOCK_ENTRIES
    assert tf_backend._block_shape(1024, 1024, None, 64) == (2, 1024)  # the 32x32 map: 2 whole examples
    assert tf_backend._block_shape(4096, 4096, None, 16) == (1, 512)  # 64x64: chunks of queries
    assert tf_backend._block_shape(1024, 1024, None, 3) == (2, 1024)  # 3 examples: blocks of 2 and 1 (+1 pad)
    assert tf_backend._block_shape(64, 64, None, 5) == (5, 64)  # a small batch: one block
    assert tf_backend._block_shape(1024, 1024, 100, None) == (20, 100)  # explicit chunk, unknown batch
    for n in (256, 1024, 4096, 16384):
        examples, chunk = tf_backend._block_shape(n, n, None, None)
        assert examples * chunk * n <= entries


def test_unknown_batch_is_spread_at_run_time_not_padded_to_the_cap():
    # Export signatures and predict() trace with batch None; one example must not be padded to 32.
    for batch, cap, expected in [(1, 32, 1), (3, 32, 3), (5, 2, 2), (64, 2, 2), (7, 3, 3), (0, 4, 1)]:
        assert tf_backend._spread(batch, cap) == expected
        assert int(tf_backend._spread(tf.constant(batch), cap)) == expected


def test_gpu_blocks_are_bounded_by_memory_only(monkeypatch):
    monkeypatch.setattr(tf_backend.tf.config, "list_logical_devices", lambda kind=None: ["a GPU"])
    assert tf_backend._block_shape(1024, 1024, None, 64) == (64, 1024)  # one block for the 32x32 map
    assert tf_backend._block_shape(16384, 16384, None, 16) == (1, 8192)


# -- the private APIs: each test fails if the hook breaks with a TF or Keras upgrade ------------


def test_float32_reads_keep_a_variable_float32_inside_a_mixed_layer_call():
    seen = {}

    class Probe(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(), initializer="ones")

        def call(self, x):
            seen["autocast"] = keras.ops.convert_to_tensor(self.w).dtype
            with backend.float32_reads():
                seen["float32"] = keras.ops.convert_to_tensor(self.w).dtype
            return x

    Probe(dtype="mixed_bfloat16")(np.ones((1,), "float32"))
    assert str(seen["autocast"]).endswith("bfloat16") and str(seen["float32"]).endswith("float32")


def test_in_multi_worker_mode_query_exists_and_is_false_on_one_process():
    from tensorflow.python.distribute.collective_all_reduce_strategy import CollectiveAllReduceExtended

    assert callable(CollectiveAllReduceExtended._in_multi_worker_mode)  # the private query we call
    assert tf_backend.in_multi_worker_mode() is False  # the default strategy
    # tests/distributed/test_multiworker.py runs it under a real two-worker cluster.


def test_track_checkpoint_names_names_a_listed_layer_in_a_checkpoint(tmp_path):
    class Holder(keras.Model):
        def __init__(self):
            super().__init__()
            self.blocks = [keras.layers.Dense(2)]
            tf_backend.track_checkpoint_names(self, {"block0": self.blocks[0]})

    model = Holder()
    model.blocks[0].build((None, 3))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert any(name.startswith("model/block0/") for name in names), names


def test_op_determinism_switch_round_trips():
    before = tf_backend.op_determinism_enabled()
    try:
        tf_backend.set_op_determinism(True)
        assert tf_backend.op_determinism_enabled() is True
        tf_backend.set_op_determinism(False)
        assert tf_backend.op_determinism_enabled() is False
    finally:
        tf_backend.set_op_determinism(before)


def test_bias_add_is_a_bias_add_op():
    graph = (
        tf.function(lambda x: tf_backend.bias_add(x, np.ones(3, "float32")))
        .get_concrete_function(tf.TensorSpec((2, 3)))
        .graph
    )
    assert "BiasAdd" in [op.type for op in graph.get_operations()]
