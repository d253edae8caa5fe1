"""TensorFlow-only fast paths and every private TensorFlow API keras_sagan uses.

Imported only when the Keras backend is TensorFlow (through `keras_sagan.backend`). It holds:

- `blocked_attention`: attention in cache-sized blocks with a hand-written backward pass that
  recomputes each block's map (sequential `tf.map_fn` blocks, `tf.custom_gradient`);
- `fused_batch_norm`: training-mode BatchNorm through `FusedBatchNormV3` (oneDNN's fused kernel);
- `bias_add`: `tf.nn.bias_add`, which Grappler's remapper can fuse with the conv before it;
- the `tf.distribute` queries the SAGAN step needs (`num_replicas_in_sync`, `replica_slice`) and the
  strategies a run picks by name (`make_strategy`: mirrored, multi-worker, TPU);
- the private TensorFlow APIs: `in_multi_worker_mode` (a `tf.distribute` strategy's private
  query), `track_checkpoint_names` (`Trackable._track_trackable`) and the op-determinism switch
  (`tensorflow.python.framework.config`). Each says why; `tests/backend/test_backend_tensorflow.py` tests each.
"""

import json
import os

import tensorflow as tf
from keras import ops

from keras_sagan.backend import BackendError
from keras_sagan.errors import bad_value, one_line

# Map entries per block of the memory-efficient path on a CPU: 2**21 float32
# entries (8 MiB) stay in the caches between the logits matmul, the softmax
# and the output matmul. Measured on the generator's 32x32 block at batch 64
# (2 cores): 2**19 / 2**20 / 2**21 / 2**22 / the whole map = 102 / 83 / 76 /
# 78 / 100 ms forward.
BLOCK_ENTRIES = 2**21
# On a GPU, many small sequential blocks would leave it idle, so blocks there
# are bounded by memory only: 2**27 entries (512 MiB). Not measured: no GPU
# was available.
GPU_BLOCK_ENTRIES = 2**27


def _block_entries():
    return GPU_BLOCK_ENTRIES if tf.config.list_logical_devices("GPU") else BLOCK_ENTRIES


def _spread(batch, max_examples):
    """Examples per block: `batch` spread evenly over the fewest blocks of at most `max_examples`.

    `batch` is an int, or a scalar tensor when the batch size is unknown when
    traced (export signatures, `predict`): then the block size is computed at
    run time, so a small batch is never padded up to `max_examples`.
    """
    if isinstance(batch, int):
        if batch == 0:
            return 1
        return -(-batch // -(-batch // min(max_examples, batch)))
    cap = tf.maximum(tf.minimum(max_examples, batch), 1)
    num_blocks = tf.maximum((batch + cap - 1) // cap, 1)
    return tf.maximum((batch + num_blocks - 1) // num_blocks, 1)


def _block_shape(num_queries, num_keys, queries_per_block, batch):
    """`(examples, queries)` per block; with `batch=None`, the most examples a block may hold."""
    entries = _block_entries()
    if queries_per_block is None:
        queries_per_block = num_queries if num_queries * num_keys <= entries else entries // num_keys
    queries_per_block = max(1, min(queries_per_block, num_queries))
    examples = max(1, entries // (queries_per_block * num_keys))
    if batch is not None:
        examples = _spread(batch, examples)
    return examples, queries_per_block


def _softmax_map(queries, keys):
    return tf.nn.softmax(tf.matmul(queries, keys, transpose_b=True), axis=-1)


def _block_forward(queries, keys, values):
    return tf.matmul(_softmax_map(queries, keys), values)


def _block_backward(queries, keys, values, d_out, out):
    # The map is recomputed here rather than stored. rowsum(dA * A) equals
    # rowsum(dO * O) (as in FlashAttention), one pass over (N, C) instead of
    # two over the N x N map.
    attention = _softmax_map(queries, keys)
    d_values = tf.matmul(attention, d_out, transpose_a=True)
    delta = tf.reduce_sum(d_out * out, axis=-1, keepdims=True)
    d_logits = attention * (tf.matmul(d_out, values, transpose_b=True) - delta)
    return tf.matmul(d_logits, keys), tf.matmul(d_logits, queries, transpose_a=True), d_values


def blocked_attention(queries, keys, values, queries_per_block=None):
    """`softmax(q k^T) v` in cache-sized blocks, never holding the whole map.

    The batch is cut into blocks of whole examples, and an example whose map
    exceeds `BLOCK_ENTRIES` into chunks of queries. Blocks run one after
    another (a sequential `tf.map_fn`) in both passes: the executor would
    otherwise run independent blocks side by side and hold all their maps.
    The backward pass is written by hand and recomputes each block's map, so
    memory stays at one block's map plus the (B, N, C) tensors. It is itself
    differentiable (WGAN-GP differentiates D's input gradient).

    Everything runs in float32, whatever the inputs' dtype: the logits are
    sums of C/8 products and each map row has up to N entries, so half
    precision would lose softmax mass. The result has `values.dtype`.

    Args:
        queries: `(B, N, Cq)`.
        keys: `(B, Nk, Cq)`.
        values: `(B, Nk, C)`.
        queries_per_block: int or None. Queries per chunk; `None` chunks only
            examples whose map exceeds the block size (`BLOCK_ENTRIES` on a
            CPU, `GPU_BLOCK_ENTRIES` when a GPU is visible).
    """
    out_dtype = values.dtype
    num_queries, num_keys = queries.shape[1], keys.shape[1]
    max_examples, chunk = _block_shape(num_queries, num_keys, queries_per_block, None)
    num_chunks = -(-num_queries // chunk)
    padded_queries = num_chunks * chunk

    def blocks(tensor, examples, batch_padding, row_padding=0):
        # (B, rows, C) -> (blocks, examples, rows + row_padding, C), zero-padded.
        tensor = tf.pad(tensor, [[0, batch_padding], [0, row_padding], [0, 0]])
        return tf.reshape(tensor, [-1, examples, tensor.shape[1], tensor.shape[2]])

    def unblock(tensor, batch, rows):
        return tf.reshape(tensor, [-1, tensor.shape[2], tensor.shape[3]])[:, :rows][:batch]  # rows stay static

    def chunks(tensor):
        # (examples, padded_queries, C) -> (num_chunks, examples, chunk, C)
        return tf.transpose(tf.reshape(tensor, [-1, num_chunks, chunk, tensor.shape[-1]]), [1, 0, 2, 3])

    def unchunk(tensor):
        return tf.reshape(tf.transpose(tensor, [1, 0, 2, 3]), [-1, padded_queries, tensor.shape[-1]])

    def forward_block(block):
        q, k, v = block
        if num_chunks == 1:
            return _block_forward(q, k, v)
        out = tf.map_fn(lambda qc: _block_forward(qc, k, v), chunks(q), parallel_iterations=1)
        return unchunk(out)

    def backward_block(block):
        q, k, v, d_out, out = block
        if num_chunks == 1:
            return _block_backward(q, k, v, d_out, out)

        def body(index, d_q, d_k, d_v):
            rows = slice(None), slice(index * chunk, (index + 1) * chunk)
            d_q_chunk, d_k_chunk, d_v_chunk = _block_backward(q[rows], k, v, d_out[rows], out[rows])
            return index + 1, d_q.write(index, d_q_chunk), d_k + d_k_chunk, d_v + d_v_chunk

        _, d_q, d_k, d_v = tf.while_loop(
            lambda index, *_: index < num_chunks,
            body,
            (0, tf.TensorArray(tf.float32, num_chunks), tf.zeros_like(k), tf.zeros_like(v)),
            parallel_iterations=1,
        )
        return unchunk(d_q.stack()), d_k, d_v

    @tf.custom_gradient
    def attend(q, k, v):
        batch = q.shape[0] if q.shape[0] is not None else tf.shape(q)[0]
        examples = _spread(batch, max_examples)
        batch_padding = (-batch) % examples
        out = tf.map_fn(
            forward_block,
            (
                blocks(q, examples, batch_padding, padded_queries - num_queries),
                blocks(k, examples, batch_padding),
                blocks(v, examples, batch_padding),
            ),
            parallel_iterations=1,
            fn_output_signature=tf.float32,
        )
        out = unblock(out, batch, num_queries)

        def grad(d_out):
            row_padding = padded_queries - num_queries
            d_q, d_k, d_v = tf.map_fn(
                backward_block,
                (
                    blocks(q, examples, batch_padding, row_padding),
                    blocks(k, examples, batch_padding),
                    blocks(v, examples, batch_padding),
                    blocks(d_out, examples, batch_padding, row_padding),
                    blocks(out, examples, batch_padding, row_padding),
                ),
                parallel_iterations=1,
                fn_output_signature=(tf.float32, tf.float32, tf.float32),
            )
            return unblock(d_q, batch, num_queries), unblock(d_k, batch, num_keys), unblock(d_v, batch, num_keys)

        return out, grad

    out = attend(tf.cast(queries, "float32"), tf.cast(keys, "float32"), tf.cast(values, "float32"))
    return tf.cast(out, out_dtype)


def bias_add(x, bias, data_format="channels_last"):
    """`tf.nn.bias_add`: a BiasAdd op rather than a broadcast add.

    Grappler's remapper fuses conv + BiasAdd + activation, and its add-based pattern fails
    ("remapper failed ... missing node") when the activation feeds both a matmul and its own
    gradient, dropping all fusions.
    """
    return tf.nn.bias_add(x, ops.cast(bias, x.dtype), data_format="NCHW" if data_format == "channels_first" else "NHWC")


def num_replicas_in_sync():
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def replica_slice(global_values, local_batch):
    """This replica's rows of `global_values`, drawn for the global batch on every replica.

    Every replica draws the same global noise (SeedGenerator state is mirrored) and keeps its own
    slice, so N replicas see exactly the noise one device would see for the global batch.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return global_values
    start = context.replica_id_in_sync_group * local_batch
    # tf.slice with the (static, when known) batch keeps the shape static, as TPUs need.
    rank = len(global_values.shape)
    return tf.slice(global_values, [start] + [0] * (rank - 1), [local_batch] + list(global_values.shape[1:]))


def _fusable(layer, inputs, training, mask):
    if not (training and layer.trainable) or mask is not None or layer.renorm:
        return False
    if len(inputs.shape) != 4 or layer.axis not in (-1, 3) or inputs.shape[-1] is None:
        return False
    context = tf.distribute.get_replica_context()
    return context is None or context.num_replicas_in_sync == 1


def fused_batch_norm(layer, inputs, training, mask):
    """`FusedBatchNormV3` for a Keras BatchNormalization `layer` in single-replica training, else None.

    Keras' TensorFlow backend normalises with separate moments, subtract, multiply and add ops and
    keeps their intermediates for the backward pass; the fused kernel took G's four BatchNorms at
    batch 64 from 55 to 24 ms forward+backward. The results are Keras': batch statistics in
    float32, the same epsilon, and the biased variance in the moving average (the kernel returns
    the unbiased one, rescaled here). Several replicas keep Keras' synchronised path.
    """
    if not _fusable(layer, inputs, training, mask):
        return None
    x = ops.cast(inputs, "float32")  # as Keras: statistics in float32 whatever the policy
    empty = tf.constant([], "float32")
    channels = x.shape[-1]
    outputs, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=ops.cast(layer.gamma, "float32") if layer.scale else ops.ones((channels,)),
        offset=ops.cast(layer.beta, "float32") if layer.center else ops.zeros((channels,)),
        mean=empty,
        variance=empty,
        epsilon=layer.epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    shape = ops.shape(x)
    count = ops.cast(shape[0] * shape[1] * shape[2], "float32")
    variance = unbiased_variance * ops.maximum(count - 1.0, 1.0) / count
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return ops.cast(outputs, layer.compute_dtype)


def in_multi_worker_mode():
    """Whether the step runs under a multi-worker `MultiWorkerMirroredStrategy`.

    Private TF API (`strategy.extended._in_multi_worker_mode`): the same test as Keras' own
    (`_collective_all_reduce_multi_worker`), which decides when logs are reduced along axis 0.
    """
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def track_checkpoint_names(model, named_layers):
    """Names `named_layers` (`{name: layer}`) as `model`'s dependencies in `tf.train.Checkpoint`.

    Private TF API (`Trackable._track_trackable`): Keras keeps layers held in lists out of
    TensorFlow checkpoints (shared/NOTES.md), and a checkpoint finds an object by these names: the
    keys that runs wrote before the blocks moved into lists, so those runs still resume.
    """
    for name, layer in named_layers.items():
        model._track_trackable(layer, name=name, overwrite=True)


def op_determinism_enabled():
    """Private TF API (`tensorflow.python.framework.config`): TF has a public enable, no public query or disable."""
    from tensorflow.python.framework import config as tf_config

    return tf_config.is_op_determinism_enabled()


def set_op_determinism(enabled):
    """Turns TF's op determinism on or off (off through the private `disable_op_determinism`)."""
    from tensorflow.python.framework import config as tf_config

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


# -- the strategy ---------------------------------------------------------------------------------

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
"""The strategies that work on TensorFlow; `multihost` is JAX's multi-process run."""


def make_strategy(name: str, collective_timeout: float | None = None, processes: dict | None = None):
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`; `processes` is JAX's).

    `"default"`: `tf.distribute.get_strategy()`; `"mirrored"`: all GPUs, else all logical CPUs;
    `"multiworker"`: `make_multiworker_strategy(collective_timeout)`; `"tpu"`: `make_tpu_strategy()`.
    """
    if name not in STRATEGIES:
        raise BackendError(
            bad_value(
                "strategy",
                name,
                f"one of {STRATEGIES} on the tensorflow backend (multihost is JAX's multi-process run: "
                "KERAS_BACKEND=jax; on TensorFlow, multiworker runs several hosts through TF_CONFIG)",
            )
        )
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        return make_multiworker_strategy(collective_timeout)
    if name == "tpu":
        return make_tpu_strategy()
    return tf.distribute.get_strategy()


def make_multiworker_strategy(collective_timeout: float | None = None) -> tf.distribute.MultiWorkerMirroredStrategy:
    """`MultiWorkerMirroredStrategy` for the cluster of `TF_CONFIG` (one local process without it).

    Must run before the process executes any TensorFlow op: the strategy starts this worker's
    gRPC server and the coordination service.

    Args:
        collective_timeout: float or None. Seconds a collective op may wait for the other
            workers before it fails with `DeadlineExceededError`; `None` waits without limit and
            relies on the coordination service's heartbeats, which catch a dead or stopped
            worker. It must exceed the longest pause of the chief (sample grids, evaluation).
    """
    if collective_timeout is not None and not collective_timeout > 0:
        raise ValueError(f"collective_timeout must be None or > 0 seconds; received {collective_timeout!r}.")
    raw = os.environ.get("TF_CONFIG", "")
    try:
        tf_config = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from None
    task_type = (tf_config.get("task") or {}).get("type")
    if tf_config.get("cluster") and task_type not in ("chief", "worker"):
        raise ValueError(
            f"TF_CONFIG task type must be 'chief' or 'worker' for strategy='multiworker'; received {task_type!r}."
        )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver(), communication_options=options
    )


def make_tpu_strategy() -> tf.distribute.TPUStrategy:
    """`TPUStrategy` over the TPU cores attached to this machine (a Cloud TPU VM).

    Connects with `TPUClusterResolver(tpu="local")` and initialises the TPU system. Raises a
    one-line `ValueError` where there is no TPU. Remote TPU nodes (`grpc://...`) are not
    supported: connecting to an unreachable one blocks without a time limit.
    """
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    try:
        tf.config.experimental_connect_to_cluster(resolver)  # A no-op for a local TPU.
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"strategy='tpu' found no usable TPU on this machine ({type(err).__name__}: {one_line(err)}); "
            "run on a Cloud TPU VM, or use strategy 'mirrored' or 'multiworker'"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def compile_image_function(function, height: int, width: int):
    """`function` of a float32 `(B, height, width, 3)` batch as one `tf.function` for any batch size."""
    return tf.function(function, input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32)])
