"""The SAGAN self-attention block."""

import keras
from keras import ops

from keras_sagan import backend
from keras_sagan.layers.spectral_normalization import SpectralNormalization

VARIANTS = ("sagan", "reference")


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

    When no attention map is requested, attention runs on the backend's
    memory-efficient path (`keras_sagan.backend.attention`): cache-sized
    blocks of examples and queries with a hand-written backward pass on
    TensorFlow, query chunks under `jax.checkpoint` on JAX and under
    `torch.utils.checkpoint` on torch. Each block's map
    is recomputed in the backward pass instead of being stored, so neither
    pass holds the full `N x N_key` map; the result equals the full
    computation.
    The map is materialised only when `return_attention=True` or
    `query_chunk_size=None`. The query, key and value 1x1 convs run as one
    matmul; their weights stay in the `query`, `key` and `value` sublayers.

    Args:
        variant: str. `"sagan"` or `"reference"`. Defaults to `"sagan"`.
        pooling: bool or None. 2x2 max-pool keys and values. `None` means
            `True` for `"sagan"` and `False` for `"reference"`.
        query_chunk_size: int, `"auto"` or None. Queries per block on the
            memory-efficient path. `"auto"` sizes blocks to 2**21 map entries
            on a CPU, 2**27 when a GPU is visible: whole examples while they
            fit, else chunks of queries. `None` computes the full map with plain autodiff.
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
            projected = backend.bias_add(projected, bias)
        query_channels = weights[0][0].shape[-1]
        # A split, not three slices: its gradient is one concat rather than
        # three zero-padded StridedSliceGrads (22 ms of 360 at 32x32).
        return ops.split(projected, [query_channels, 2 * query_channels], axis=-1)

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
            out, attention = backend.full_attention(queries, keys, values)
        else:
            chunk = None if self.query_chunk_size == "auto" else self.query_chunk_size
            out, attention = backend.attention(queries, keys, values, queries_per_block=chunk), None
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
