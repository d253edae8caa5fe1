"""Tiny generators and extractors shared by the metrics tests (fast, no network)."""

import keras
import numpy as np

IMAGE_SHAPE = (8, 8, 3)


class TinyGenerator(keras.Model):
    """Follows the generator contract: `z_dim`, `num_classes`, images in [-1, 1]."""

    def __init__(self, z_dim=8, num_classes=None, shift=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.shift = shift
        self.traces = 0
        init = keras.initializers.GlorotUniform(seed=seed)
        self.dense = keras.layers.Dense(int(np.prod(IMAGE_SHAPE)), kernel_initializer=init)
        if num_classes is not None:
            self.embedding = keras.layers.Embedding(num_classes, z_dim)

    def call(self, z, labels=None, training=None):
        self.traces += 1  # Python side effect: counts calls/traces.
        if self.num_classes is not None:
            z = z + self.embedding(labels)
        x = keras.ops.reshape(self.dense(z), (-1, *IMAGE_SHAPE))
        return keras.ops.clip(keras.ops.tanh(x) * 0.8 + self.shift, -1.0, 1.0)


def tiny_extractor(with_logits=True, feature_dim=16, num_classes=10):
    """Flatten -> Dense features (and Dense logits): a stand-in for InceptionV3."""
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Flatten()(inputs)
    features = keras.layers.Dense(feature_dim, kernel_initializer=keras.initializers.GlorotUniform(seed=1))(x)
    if not with_logits:
        return keras.Model(inputs, features)
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=2))(features)
    return keras.Model(inputs, [features, logits])


def sample_images(generator, n, seed):
    z = np.random.default_rng(seed).standard_normal((n, generator.z_dim)).astype("float32")
    return np.asarray(generator(z, training=False))
