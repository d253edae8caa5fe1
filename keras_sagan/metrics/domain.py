"""The domain feature network: a small Fashion-MNIST classifier for FID/KID/precision/recall on grey 32x32 images.

The TTUR authors (Heusel et al. 2017) advise a classifier of the domain for MNIST-like data, and warn
that its numbers are not comparable with Inception ones. This is that network for Fashion-MNIST:

- input: `(B, 32, 32, 1)` in [-1, 1], Fashion-MNIST as `keras_sagan.data.mnist` maps it (28x28 padded
  with 2 black pixels per side). Other sizes are resized to 32 (bilinear, antialiased) and RGB is
  averaged to grey; the recorded `resize` says which happened;
- features: the 128-d ReLU layer before the classifier (`features`), for FID, KID and PRDC;
- logits: 10 classes, for the Inception-Score analogue and the class histogram of samples.

Its weights ship inside the package (`weights/fashion_mnist_classifier.weights.h5`, 1.6 MB), pinned
by SHA-256 (`WEIGHTS_SHA256`), and are made by `benchmarks/quality/train_classifier.py`
(reproducible: fixed seed, deterministic ops). Its test accuracy is in `TEST_ACCURACY`.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from keras_sagan.errors import UsageError, one_line
from keras_sagan.metrics.networks import DOMAIN_NETWORK, RANDOM_WEIGHTS, file_sha256

NETWORK = DOMAIN_NETWORK
"""The name statistics files record for this network."""
IMAGE_SIZE = 32
FEATURE_DIM = 128
NUM_CLASSES = 10
WEIGHTS_FILE = os.path.join(os.path.dirname(__file__), "weights", "fashion_mnist_classifier.weights.h5")
WEIGHTS_SHA256 = "410bd320a451a4606a4b681166d288038f5101da26baa97f1eee72567dec43de"
"""SHA-256 of the shipped weights file; a file with another hash is refused."""
TEST_ACCURACY = 0.9311
"""Accuracy on the 10,000 test images, measured by the training script when the weights were made."""


def build_classifier() -> keras.Model:
    """The classifier: three conv stages (32-64-128 channels, BN, ReLU, 2x2 max pool), a 128-d ReLU
    feature layer, dropout and a 10-way linear layer: 394,026 parameters.

    Returns:
        A functional `keras.Model` mapping `(B, 32, 32, 1)` in [-1, 1] to `(features, logits)`.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="images")
    x = inputs
    for stage, (filters, convs) in enumerate(((32, 1), (64, 2), (128, 1))):
        for index in range(convs):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{stage}_{index}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{stage}_{index}")(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(name=f"pool{stage}")(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(keras.layers.Dropout(0.4)(features))
    return keras.Model(inputs, [features, logits], name="fashion_mnist_classifier")


class DomainClassifierExtractor:
    """Features and logits of the Fashion-MNIST classifier, with the provenance statistics files record.

    Args:
        weights: str or None. A `.weights.h5` file, `None` for the shipped file (its SHA-256 is
            checked against `WEIGHTS_SHA256`), or `"random"` for a random network (tests only).

    Example:

    ```python
    extractor = DomainClassifierExtractor()
    features, logits = extractor.features_and_logits(images)  # (B, 128), (B, 10)
    ```
    """

    network = NETWORK
    feature_dim = FEATURE_DIM
    image_size = IMAGE_SIZE

    def __init__(self, weights: str | None = None) -> None:
        self.model = build_classifier()
        if weights == RANDOM_WEIGHTS:
            self.weights_sha256 = RANDOM_WEIGHTS
        else:
            path = WEIGHTS_FILE if weights is None else os.fspath(weights)
            if not os.path.isfile(path):
                raise UsageError(
                    f"domain classifier weights not found: {path}; make them with "
                    "`python benchmarks/quality/train_classifier.py`"
                )
            self.weights_sha256 = file_sha256(path)
            if weights is None and self.weights_sha256 != WEIGHTS_SHA256:
                raise UsageError(
                    f"{path} has SHA-256 {self.weights_sha256}, not the pinned {WEIGHTS_SHA256}; reinstall keras_sagan"
                )
            try:
                self.model.load_weights(path)
            except (OSError, ValueError, TypeError) as err:  # Not HDF5, or another network's weights.
                raise UsageError(
                    f"cannot load the Fashion-MNIST network's weights from {path!r} ({one_line(err)}); pass a "
                    ".weights.h5 file of `build_classifier()` as --inception_weights FILE"
                ) from None
        self.resize_method = None  # set by the first call: "none" at 32x32, "bilinear-antialias" otherwise

    def preprocess(self, images: Any) -> np.ndarray:
        """Brings images to `(B, 32, 32, 1)` float32 in [-1, 1]: RGB averaged to grey, other sizes resized."""
        x = np.asarray(keras.ops.convert_to_numpy(images), dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"images must be (B, H, W, 1 or 3) in [-1, 1]; received shape {x.shape}")
        if x.shape[-1] == 3:
            x = x.mean(axis=-1, keepdims=True)
        if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            import tensorflow as tf

            x = tf.image.resize(x, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear", antialias=True).numpy()
            x = np.clip(x, -1.0, 1.0)
            self.resize_method = "bilinear-antialias"
        elif self.resize_method is None:
            self.resize_method = "none"
        return x

    def features_and_logits(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.model(self.preprocess(images), training=False)
        return np.asarray(keras.ops.convert_to_numpy(features)), np.asarray(keras.ops.convert_to_numpy(logits))

    def __call__(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.features_and_logits(images)

    def __repr__(self) -> str:
        return f"DomainClassifierExtractor(weights_sha256={self.weights_sha256[:12]!r})"
