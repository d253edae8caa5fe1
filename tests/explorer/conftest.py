"""Tiny random-weight generators for the explorer, attention-map and interpolation tests (one set per session)."""

import keras
import numpy as np
import pytest

from keras_sagan.models.generator import Generator


def peaked(generator, seed=0):
    """Random, larger weights in every attention layer so that maps are far from uniform, and gammas != 0."""
    rng = np.random.default_rng(seed)
    for index, layer in enumerate(generator.attention_layers):
        for conv in (layer.query, layer.key):
            conv = getattr(conv, "layer", conv)  # the conv inside SN, or the plain conv
            conv.kernel.assign(rng.normal(0, 10.0, conv.kernel.shape).astype("float32"))
        layer.gamma.assign(0.5 + index)
    return generator


@pytest.fixture(scope="session")
def unconditional(tmp_path_factory):
    """`(generator, path)`: a 32x32 dcgan G with the reference's attention (unpooled keys) at 8 and 16, as .keras."""
    keras.utils.set_random_seed(0)  # the same weights every run
    generator = Generator(image_size=32, z_dim=16, conv_dim=8, attention_variant="reference")
    generator.build()
    peaked(generator)
    generator.to_rgb.kernel.assign(generator.to_rgb.kernel * 40.0)  # images with contrast, not all mid-grey
    path = str(tmp_path_factory.mktemp("models") / "g.keras")
    generator.save(path)
    return generator, path


@pytest.fixture(scope="session")
def conditional(tmp_path_factory):
    """`(generator, path)`: a 32x32 resnet G, 3 classes, SAGAN attention (pooled keys) at 16, distinct classes."""
    keras.utils.set_random_seed(1)
    generator = Generator(image_size=32, z_dim=16, conv_dim=16, architecture="resnet", num_classes=3)
    generator.build()
    peaked(generator, seed=1)
    rng = np.random.default_rng(2)
    for block in generator.stages:
        for norm in (block.bn1, block.bn2):
            norm.class_gamma.assign(rng.normal(1.0, 0.5, norm.class_gamma.shape).astype("float32"))
            norm.class_beta.assign(rng.normal(0.0, 0.5, norm.class_beta.shape).astype("float32"))
    path = str(tmp_path_factory.mktemp("models") / "c.keras")
    generator.save(path)
    return generator, path


@pytest.fixture(scope="session")
def saved_model(unconditional, tmp_path_factory):
    """The unconditional generator exported as a TF Serving SavedModel (its version directory)."""
    from keras_sagan.export.saved_model import export_generator

    return export_generator(unconditional[0], str(tmp_path_factory.mktemp("export") / "g"))


@pytest.fixture(scope="session")
def ema_run(tmp_path_factory):
    """A run directory whose checkpoint holds an EMA generator that differs from the live one."""
    from run_fixtures import ema_sagan, write_run

    path = str(tmp_path_factory.mktemp("runs") / "run")
    write_run(path, ema_sagan())
    return path
