"""A 16-d stand-in for keras.applications.InceptionV3, for tests that must not build the real network."""

import os

import keras

from keras_sagan.metrics import InceptionFeatureExtractor
from keras_sagan.metrics import inception as inception_module

TINY_FEATURES = 16


def tiny_inception_v3(include_top, weights, input_shape, classifier_activation=None, pooling=None):
    """Stand-in for keras.applications.InceptionV3 (same output layer names), 16-d features."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(input_shape[0] // 4)(inputs))
    features = keras.layers.Dense(TINY_FEATURES, name="avg_pool")(x)
    if not include_top:
        return keras.Model(inputs, features)
    return keras.Model(inputs, keras.layers.Dense(10, name="predictions")(features))


def use_tiny_inception(monkeypatch):
    """Makes `InceptionFeatureExtractor` build the stand-in: everything else runs as it is."""
    monkeypatch.setattr(inception_module, "_build_inception_v3", tiny_inception_v3)
    monkeypatch.setattr(InceptionFeatureExtractor, "feature_dim", TINY_FEATURES)


def tiny_weights_file(path):
    """Saves a stand-in's weights to `path` (call after `use_tiny_inception`); returns it as a str."""
    InceptionFeatureExtractor(weights=None).model.save_weights(os.fspath(path))
    return os.fspath(path)
