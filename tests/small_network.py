"""The small feature network for tests that must not build the FID network: `--inception fashion_mnist`, 128-d."""

import os

from keras_sagan.metrics.domain import FEATURE_DIM, DomainClassifierExtractor

SMALL_FEATURES = FEATURE_DIM


def small_weights_file(path):
    """Saves random weights of the Fashion-MNIST network to `path`; returns it as a str."""
    DomainClassifierExtractor("random").model.save_weights(os.fspath(path))
    return os.fspath(path)
