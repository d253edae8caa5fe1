"""The blocks of both architectures: dcgan stages (`keras.Sequential`) and residual up/down blocks."""

import keras
from keras import ops

from keras_sagan.layers import BatchNormalization, ConditionalBatchNormalization, SpectralNormalization


def sn_conv(filters, kernel_size, dtype=None):
    return SpectralNormalization(keras.layers.Conv2D(filters, kernel_size, padding="same", dtype=dtype), dtype=dtype)


def dcgan_up_stage(filters, kernel_size=4, strides=2, padding="same"):
    """SN transposed conv + BatchNorm + ReLU: the reference generator's stage."""
    return keras.Sequential(
        [
            SpectralNormalization(keras.layers.Conv2DTranspose(filters, kernel_size, strides, padding=padding)),
            BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True),
            keras.layers.ReLU(),
        ]
    )


@keras.saving.register_keras_serializable(package="keras_sagan")
def leaky_relu_0_1(x):
    """LeakyReLU with slope 0.1, as `where(x > 0, x, 0.1 x)`.

    Not `tf.nn.leaky_relu`: when its output feeds an attention block's matmul,
    Grappler's remapper (TF 2.21 with oneDNN) fuses conv + BiasAdd + LeakyRelu
    although LeakyReluGrad still needs the BiasAdd, fails, and logs "remapper
    failed" for every traced train step. A `where` rather than `max(x, 0.1 x)`
    keeps a boolean mask for the backward pass instead of a second float copy.
    """
    return ops.where(x > 0, x, 0.1 * x)


def dcgan_down_stage(filters):
    """SN 4x4 stride-2 conv + LeakyReLU(0.1): the reference discriminator's stage."""
    return keras.Sequential(
        [
            SpectralNormalization(keras.layers.Conv2D(filters, 4, 2, padding="same")),
            keras.layers.Activation(leaky_relu_0_1),
        ]
    )


def _batch_norm(num_classes, dtype=None):
    if num_classes is None:
        return BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=True, dtype=dtype)
    return ConditionalBatchNormalization(num_classes, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_sagan")
class GeneratorBlock(keras.layers.Layer):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 with an upsample-conv1x1 shortcut.

    Args:
        filters: int. Output channels.
        num_classes: int or None. Conditional BN over this many classes.
    """

    def __init__(self, filters, num_classes=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_classes = num_classes
        # Sublayers take this block's policy: a block built with `dtype=` runs in it throughout.
        policy = self.dtype_policy
        self.bn1 = _batch_norm(num_classes, policy)
        self.conv1 = sn_conv(filters, 3, policy)
        self.bn2 = _batch_norm(num_classes, policy)
        self.conv2 = sn_conv(filters, 3, policy)
        self.shortcut = sn_conv(filters, 1, policy)

    def build(self, inputs_shape, labels_shape=None):
        # Every sublayer's variables exist after build(), as .keras loading needs (it builds, then loads).
        batch, height, width, _ = inputs_shape
        upsampled = (batch, None if height is None else 2 * height, None if width is None else 2 * width)
        if self.num_classes is None:
            self.bn1.build(inputs_shape)
        else:
            self.bn1.build(inputs_shape, labels_shape)
        self.conv1.build(upsampled + (inputs_shape[-1],))
        hidden = upsampled + (self.filters,)
        if self.num_classes is None:
            self.bn2.build(hidden)
        else:
            self.bn2.build(hidden, labels_shape)
        self.conv2.build(hidden)
        self.shortcut.build(upsampled + (inputs_shape[-1],))

    def _norm(self, layer, x, labels, training):
        if self.num_classes is None:
            return layer(x, training=training)
        return layer(x, labels, training=training)

    def call(self, inputs, labels=None, training=None):
        h = ops.relu(self._norm(self.bn1, inputs, labels, training))
        h = ops.repeat(ops.repeat(h, 2, axis=1), 2, axis=2)
        h = self.conv1(h, training=training)
        h = ops.relu(self._norm(self.bn2, h, labels, training))
        h = self.conv2(h, training=training)
        skip = ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2)
        return h + self.shortcut(skip, training=training)

    def compute_output_shape(self, inputs_shape, labels_shape=None):
        # Named after call()'s arguments: Keras matches `<arg>_shape` names when it infers a symbolic call.
        return (inputs_shape[0], inputs_shape[1] * 2, inputs_shape[2] * 2, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "num_classes": self.num_classes})
        return config


@keras.saving.register_keras_serializable(package="keras_sagan")
class DiscriminatorBlock(keras.layers.Layer):
    """(ReLU)-conv3x3-ReLU-conv3x3-(avgpool) with a conv1x1 shortcut.

    Args:
        filters: int. Output channels.
        downsample: bool. 2x2 average-pool the output.
        preactivation: bool. ReLU before the first conv; `False` for the
            block that sees the image.
    """

    def __init__(self, filters, downsample=True, preactivation=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.downsample = downsample
        self.preactivation = preactivation
        policy = self.dtype_policy  # sublayers take this block's policy, as in GeneratorBlock
        self.conv1 = sn_conv(filters, 3, policy)
        self.conv2 = sn_conv(filters, 3, policy)
        self.shortcut = sn_conv(filters, 1, policy)

    def build(self, inputs_shape):
        # Every sublayer's variables exist after build(), as .keras loading needs (it builds, then loads).
        self.conv1.build(inputs_shape)
        self.conv2.build(tuple(inputs_shape[:-1]) + (self.filters,))
        self.shortcut.build(inputs_shape)  # before or after the pool: a 1x1 conv's weights ignore the map size

    def _pool(self, x):
        return ops.average_pool(x, 2, 2) if self.downsample else x

    def call(self, inputs, training=None):
        h = ops.relu(inputs) if self.preactivation else inputs
        h = self.conv1(h, training=training)
        h = self.conv2(ops.relu(h), training=training)
        h = self._pool(h)
        if self.preactivation:
            skip = self._pool(self.shortcut(inputs, training=training))
        else:
            skip = self.shortcut(self._pool(inputs), training=training)
        return h + skip

    def compute_output_shape(self, input_shape):
        scale = 2 if self.downsample else 1
        return (input_shape[0], input_shape[1] // scale, input_shape[2] // scale, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "downsample": self.downsample, "preactivation": self.preactivation})
        return config
