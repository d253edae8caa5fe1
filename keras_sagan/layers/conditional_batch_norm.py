"""Class-conditional batch normalisation for the conditional generator."""

import keras
from keras import ops

from keras_sagan.layers.batch_normalization import BatchNormalization


@keras.saving.register_keras_serializable(package="keras_sagan")
class ConditionalBatchNormalization(keras.layers.Layer):
    """Batch norm whose scale and offset are looked up per class.

    Normalises with batch statistics (moving statistics at inference), then
    applies `gamma[y] * x_hat + beta[y]`. gamma starts at 1 and beta at 0 for
    every class, so an untrained layer is plain batch norm. This is the
    conditional BN of the SAGAN paper's ImageNet generator.

    Args:
        num_classes: int. Number of classes (labels are `0..num_classes-1`).
        momentum: float. Moving-statistics momentum. Defaults to `0.9`
            (PyTorch's 0.1).
        epsilon: float. Variance epsilon. Defaults to `1e-5` (PyTorch's).
        synchronized: bool. Compute batch statistics across replicas under
            `tf.distribute`. Defaults to `True`.

    Call arguments:
        inputs: `(B, H, W, C)` features.
        labels: `(B,)` integer class labels, or `(B, num_classes)` float class
            weights: the scale and offset are then the weighted sums of the
            classes' (a blend of classes, for interpolation between them).
        training: bool. Use batch statistics and update the moving ones.

    Example:

    >>> cbn = ConditionalBatchNormalization(10)
    >>> y = cbn(np.ones((4, 8, 8, 16), "float32"), np.arange(4), training=True)
    """

    def __init__(self, num_classes, momentum=0.9, epsilon=1e-5, synchronized=True, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1; received {num_classes!r}.")
        self.num_classes = num_classes
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized
        # The inner batch norm takes this layer's policy: with `dtype=` alone it would stay float32 and
        # return float32 into the compute-dtype scale and offset.
        self.batch_norm = BatchNormalization(
            momentum=momentum,
            epsilon=epsilon,
            center=False,
            scale=False,
            synchronized=synchronized,
            dtype=self.dtype_policy,
        )

    def build(self, inputs_shape, labels_shape=None):
        channels = inputs_shape[-1]
        self.batch_norm.build(inputs_shape)
        self.class_gamma = self.add_weight(shape=(self.num_classes, channels), initializer="ones", name="class_gamma")
        self.class_beta = self.add_weight(shape=(self.num_classes, channels), initializer="zeros", name="class_beta")

    def call(self, inputs, labels, training=None):
        normalized = self.batch_norm(inputs, training=training)
        if len(labels.shape) == 2:  # class weights: a blend of the classes' scales and offsets
            weights = ops.cast(labels, self.class_gamma.dtype)
            gamma = ops.matmul(weights, self.class_gamma)[:, None, None, :]
            beta = ops.matmul(weights, self.class_beta)[:, None, None, :]
            return normalized * ops.cast(gamma, normalized.dtype) + ops.cast(beta, normalized.dtype)
        labels = ops.cast(labels, "int32")
        gamma = ops.take(self.class_gamma, labels, axis=0)[:, None, None, :]
        beta = ops.take(self.class_beta, labels, axis=0)[:, None, None, :]
        return normalized * gamma + beta

    def compute_output_shape(self, inputs_shape, labels_shape=None):
        # Named after call()'s arguments: Keras matches `<arg>_shape` names when it infers a symbolic call.
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "synchronized": self.synchronized,
            }
        )
        return config
