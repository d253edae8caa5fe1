"""The SAGAN self-attention block."""

import keras
import tensorflow as tf
from keras import ops

from keras_sagan.layers.spectral_normalization import SpectralNormalization

VARIANTS = ("sagan", "reference")
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


def _conv1x1(filters, use_bias, spectral_norm):
    conv = keras.layers.Conv2D(filters, 1, use_bias=use_bias)
    return SpectralNormalization(conv) if spectral_norm else conv


@keras.saving.register_keras_serializable(package="keras_sagan")
class SelfAttention(keras.layers.Layer):
    """Self-attention over the spatial positions of a feature map.

    Each query position attends over all key positions:
    `A = softmax_keys(q k^T)`, `o_i = sum_j A[i, j] v_j`, and the block returns
    `gamma * o + x` with the scalar `gamma` initialised to 0, so the block
    starts as the identity and learns how much non-local evidence to use.

    Two variants:
    - `"sagan"` (default): the official SAGAN/BigGAN block. query (theta)
      and key (phi) are 1x1 convs to C/8, value (g) to C/2, and an output conv
      (o) maps back to C. All four are spectrally normalised and have no bias.
      Keys and values are 2x2 max-pooled when `pooling` is on (the default),
      so the map is `(B, N, N/4)`.
    - `"reference"`: exactly the block of the PyTorch reference
      (heykeetae/Self-Attention-GAN): 1x1 convs with bias, query/key to C/8,
      value to C, no output conv, no spectral norm, no pooling by default.

    When no attention map is requested, attention runs in cache-sized blocks
    of examples and queries (`blocked_attention`) and each block's map is
    recomputed in the backward pass instead of being stored, so neither pass
    holds the full `N x N_key` map; the result equals the full computation.
    The map is materialised only when `return_attention=True` or
    `query_chunk_size=None`. The query, key and value 1x1 convs run as one
    matmul; their weights stay in the `query`, `key` and `value` sublayers.

    Args:
        variant: str. `"sagan"` or `"reference"`. Defaults to `"sagan"`.
        pooling: bool or None. 2x2 max-pool keys and values. `None` means
            `True` for `"sagan"` and `False` for `"reference"`.
        query_chunk_size: int, `"auto"` or None. Queries per block on the
            memory-efficient path. `"auto"` sizes blocks to `BLOCK_ENTRIES`
            (2**21) map entries on a CPU, `GPU_BLOCK_ENTRIES` (2**27) when a
            GPU is visible: whole examples while they fit, else chunks of
            queries. `None` computes the full map with plain autodiff.
            Defaults to `"auto"`.

    Call arguments:
        inputs: `(B, H, W, C)` feature map, C >= 8.
        training: bool. Passed to the spectrally normalised convs.
        return_attention: bool. Also return the `(B, H*W, N_key)` map whose
            rows sum to 1.

    Example:

    >>> attn = SelfAttention(variant="reference")
    >>> y, a = attn(np.zeros((2, 16, 16, 64), "float32"), return_attention=True)
    >>> a.shape
    (2, 256, 256)

    Reference:
        Zhang, Goodfellow, Metaxas, Odena, "Self-Attention Generative
        Adversarial Networks", ICML 2019.
    """

    def __init__(self, variant="sagan", pooling=None, query_chunk_size="auto", **kwargs):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}; received {variant!r}.")
        if query_chunk_size not in (None, "auto") and (
            not isinstance(query_chunk_size, int) or isinstance(query_chunk_size, bool) or query_chunk_size < 1
        ):
            raise ValueError(f'query_chunk_size must be None, "auto" or an int >= 1; received {query_chunk_size!r}.')
        self.variant = variant
        self.pooling = pooling
        self.query_chunk_size = query_chunk_size
        self._pool = (variant == "sagan") if pooling is None else bool(pooling)

    def build(self, input_shape):
        height, width, channels = input_shape[1], input_shape[2], input_shape[-1]
        if channels is None or channels < 8:
            raise ValueError(f"SelfAttention needs at least 8 input channels; received input shape {input_shape}.")
        if self._pool and (height % 2 or width % 2):
            raise ValueError(f"pooling needs even height and width; received input shape {input_shape}.")
        sagan = self.variant == "sagan"
        value_channels = channels // 2 if sagan else channels
        self.query = _conv1x1(channels // 8, use_bias=not sagan, spectral_norm=sagan)
        self.key = _conv1x1(channels // 8, use_bias=not sagan, spectral_norm=sagan)
        self.value = _conv1x1(value_channels, use_bias=not sagan, spectral_norm=sagan)
        self.query.build(input_shape)
        self.key.build(input_shape)
        self.value.build(input_shape)
        if sagan:
            self.output_projection = _conv1x1(channels, use_bias=False, spectral_norm=True)
            self.output_projection.build(tuple(input_shape[:-1]) + (value_channels,))
        else:
            self.output_projection = None
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def _pointwise_weights(self, layer, training):
        """A 1x1 conv's `(C_in, C_out)` kernel (normalised if SN) and bias."""
        if isinstance(layer, SpectralNormalization):
            kernel, bias = layer.normalized_kernel(training=bool(training)), layer.layer.bias
        else:
            kernel, bias = layer.kernel, layer.bias
        return ops.reshape(kernel, (kernel.shape[-2], kernel.shape[-1])), bias

    def _project(self, inputs, training):
        # query, key and value as one (B*N, C) x (C, 2*C/8 + C_v) matmul:
        # oneDNN's matmul is several times faster than three 1x1 convs here,
        # above all in the backward pass (measured at 32x32, C=64, batch 64).
        weights = [self._pointwise_weights(layer, training) for layer in (self.query, self.key, self.value)]
        kernel = ops.cast(ops.concatenate([kernel for kernel, _ in weights], axis=-1), self.compute_dtype)
        flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
        projected = ops.matmul(flat, kernel)
        if weights[0][1] is not None:
            bias = ops.concatenate([bias for _, bias in weights], axis=-1)
            projected = tf.nn.bias_add(projected, ops.cast(bias, projected.dtype))
        query_channels = weights[0][0].shape[-1]
        # A split, not three slices: its gradient is one concat rather than
        # three zero-padded StridedSliceGrads (22 ms of 360 at 32x32).
        return ops.split(projected, [query_channels, 2 * query_channels], axis=-1)

    def _attend(self, queries, keys, values):
        """Full attention, map included (for `return_attention=True`)."""
        logits = ops.einsum("bqc,bkc->bqk", ops.cast(queries, "float32"), ops.cast(keys, "float32"))
        attention = ops.softmax(logits, axis=-1)
        out = ops.einsum("bqk,bkc->bqc", attention, ops.cast(values, "float32"))  # float32, as the blocked path
        return ops.cast(out, values.dtype), attention

    def call(self, inputs, training=None, return_attention=False):
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[1], inputs.shape[2]
        queries, keys, values = self._project(inputs, training)
        queries = ops.reshape(queries, (batch, height * width, queries.shape[-1]))
        key_shape = (batch, height, width)
        if self._pool:
            keys = ops.max_pool(ops.reshape(keys, key_shape + (keys.shape[-1],)), 2, 2)
            values = ops.max_pool(ops.reshape(values, key_shape + (values.shape[-1],)), 2, 2)
        num_keys = (height // 2) * (width // 2) if self._pool else height * width
        keys = ops.reshape(keys, (batch, num_keys, keys.shape[-1]))
        values = ops.reshape(values, (batch, num_keys, values.shape[-1]))
        if return_attention or self.query_chunk_size is None:
            out, attention = self._attend(queries, keys, values)
        else:
            chunk = None if self.query_chunk_size == "auto" else self.query_chunk_size
            out, attention = blocked_attention(queries, keys, values, queries_per_block=chunk), None
        if self.output_projection is not None:
            kernel, _ = self._pointwise_weights(self.output_projection, training)
            out = ops.matmul(ops.reshape(out, (-1, out.shape[-1])), ops.cast(kernel, self.compute_dtype))
        out = ops.reshape(out, (batch, height, width, inputs.shape[-1]))
        outputs = ops.cast(self.gamma, out.dtype) * out + inputs
        if return_attention:
            return outputs, attention
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"variant": self.variant, "pooling": self.pooling, "query_chunk_size": self.query_chunk_size})
        return config
