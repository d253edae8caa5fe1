"""Spectral normalisation wrapper whose gradient flows through sigma."""

import keras
from keras import ops

from keras_sagan import backend

_SUPPORTED = (
    keras.layers.Dense,
    keras.layers.Conv2D,
    keras.layers.Conv2DTranspose,
    keras.layers.Embedding,
)


def _l2_normalize(x, epsilon):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), epsilon)


@keras.saving.register_keras_serializable(package="keras_sagan")
class SpectralNormalization(keras.layers.Wrapper):
    """Divides the wrapped layer's kernel by its largest singular value.

    Miyato et al. 2018 spectral normalisation, computed in the forward pass:
    `W_sn = W / sigma(W)`. Unlike `keras.layers.SpectralNormalization`, the
    wrapped kernel is never overwritten, so the gradient flows through sigma
    (with `u` and `v` held constant, as in `torch.nn.utils.spectral_norm`).

    sigma is estimated by power iteration on the kernel reshaped to
    `(-1, kernel.shape[-1])`. For `Conv2DTranspose` (kernel `(k, k, out, in)`)
    that is the input-channel axis, which is what the PyTorch reference's
    reshape of its `(in, out, k, k)` weight along dim 0 computes; for `Dense`
    and `Conv2D` it is the output axis, as in PyTorch. The singular value is
    the same either way; only the length of `u` differs.

    `u` is a non-trainable variable updated only when `training=True`. With
    `training=False` no variable changes and sigma is `||u W^T||`, the estimate
    from the stored `u`, normalised (the initial `u` is not unit length). The
    layer is written in `keras.ops` and runs on every supported backend. Under
    `tf.distribute` each replica updates its own copy of `u` with no
    communication (sync-on-read, reads take the first replica's); every
    replica computes the same value from the same mirrored kernel, so the
    copies never drift apart.

    Args:
        layer: `Dense`, `Conv2D`, `Conv2DTranspose` or `Embedding` layer.
        power_iterations: int. Power-iteration steps per training call.
            Defaults to `1`.
        epsilon: float. Guards the vector normalisation against division by
            zero. Defaults to `1e-12`.

    Call arguments:
        inputs: the wrapped layer's input.
        training: bool. Whether to run the power iteration and update `u`.

    Example:

    >>> sn = SpectralNormalization(keras.layers.Dense(4))
    >>> y = sn(np.ones((2, 3), "float32"), training=True)

    Reference:
        Miyato et al., "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018.
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        if not isinstance(layer, _SUPPORTED):
            raise ValueError(
                "SpectralNormalization wraps Dense, Conv2D, Conv2DTranspose or "
                f"Embedding layers; received {type(layer).__name__}."
            )
        if getattr(layer, "groups", 1) != 1:
            raise ValueError(f"Grouped convolutions are not supported; received groups={layer.groups}.")
        if not isinstance(power_iterations, int) or power_iterations < 1:
            raise ValueError(f"power_iterations must be an int >= 1; received {power_iterations!r}.")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0; received {epsilon!r}.")
        super().__init__(layer, **kwargs)
        self.power_iterations = power_iterations
        self.epsilon = epsilon

    def build(self, input_shape):
        super().build(input_shape)
        kernel = self._kernel
        # Sync-on-read: each replica updates its own copy with no cross-replica
        # communication (so the update can sit inside a per-replica XLA
        # cluster). Every replica computes the same u from the same mirrored
        # kernel, so the copies never drift; reads outside replicas (and
        # checkpoints) take the first replica's.
        self.u = keras.Variable(
            keras.initializers.RandomNormal(stddev=1.0),
            shape=(1, kernel.shape[-1]),
            dtype="float32",
            trainable=False,
            synchronization="on_read",
            aggregation="only_first_replica",
            name="u",
        )

    @property
    def _kernel(self):
        if isinstance(self.layer, keras.layers.Embedding):
            return self.layer.embeddings
        return self.layer.kernel

    def _float32(self, variable):
        # The power iteration stays in float32 whatever the dtype policy: Keras autocasts float
        # variables read inside a mixed-precision layer call, so reads go through a scope that
        # does not (a private Keras API, kept in keras_sagan.backend).
        with backend.float32_reads():
            return ops.cast(ops.convert_to_tensor(variable), "float32")

    def _sigma_and_u(self, kernel, training):
        matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))
        u = self._float32(self.u)
        if not training:
            u_norm = ops.maximum(ops.sqrt(ops.sum(ops.square(u))), self.epsilon)
            return ops.sqrt(ops.sum(ops.square(ops.matmul(u, ops.transpose(matrix))))) / u_norm, u
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(matrix)), self.epsilon)
            u = _l2_normalize(ops.matmul(v, matrix), self.epsilon)
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, matrix) * u)
        return sigma, u

    def spectral_norm(self):
        """Returns the current sigma estimate without changing any variable."""
        return self._sigma_and_u(self._float32(self._kernel), training=False)[0]

    def normalized_kernel(self, training=False):
        """Returns `W / sigma` (float32). With `training=True`, updates `u`."""
        kernel = self._float32(self._kernel)
        sigma, u = self._sigma_and_u(kernel, training)
        if training:
            self.u.assign(u)
        return kernel / sigma

    def call(self, inputs, training=None):
        kernel = ops.cast(self.normalized_kernel(training=bool(training)), self.compute_dtype)
        layer = self.layer
        if isinstance(layer, keras.layers.Embedding):
            return ops.take(kernel, ops.cast(inputs, "int32"), axis=0)
        if isinstance(layer, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        else:  # The wrapped conv's own settings, on the normalised kernel.
            settings = {
                "strides": list(layer.strides),
                "padding": layer.padding,
                "dilation_rate": layer.dilation_rate,
                "data_format": layer.data_format,
            }
            if isinstance(layer, keras.layers.Conv2DTranspose):
                outputs = ops.conv_transpose(inputs, kernel, output_padding=layer.output_padding, **settings)
            else:
                outputs = ops.conv(inputs, kernel, **settings)
        if layer.use_bias:
            # TensorFlow's BiasAdd on that backend: Grappler fuses it with the conv (backend.py).
            outputs = backend.bias_add(outputs, layer.bias, getattr(layer, "data_format", "channels_last"))
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "epsilon": self.epsilon})
        return config
