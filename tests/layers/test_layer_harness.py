"""`run_layer_test` on every layer of keras_sagan.layers and every block of keras_sagan.models.blocks."""

import keras
import numpy as np
import pytest
from layer_checks import run_layer_test

from keras_sagan.layers import BatchNormalization, ConditionalBatchNormalization, SelfAttention, SpectralNormalization
from keras_sagan.models.blocks import DiscriminatorBlock, GeneratorBlock, dcgan_down_stage, dcgan_up_stage

_rng = np.random.default_rng(0)
MAPS = _rng.normal(size=(2, 8, 8, 16)).astype("float32")
IMAGES = _rng.normal(size=(2, 8, 8, 3)).astype("float32")
VECTORS = _rng.normal(size=(2, 6)).astype("float32")
TOKENS = np.array([[0, 3, 5], [1, 2, 4]], "int32")
LABELS = np.array([0, 2], "int32")
CLASS_WEIGHTS = np.array([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]], "float32")


def _open_gate(layer):
    # gamma starts at 0, which leaves query, key and value without a gradient.
    layer.gamma.assign(0.5)


CASES = {
    "self_attention_sagan": (SelfAttention, {}, MAPS, MAPS.shape, _open_gate),
    "self_attention_reference": (SelfAttention, {"variant": "reference"}, MAPS, MAPS.shape, _open_gate),
    "self_attention_full_map": (SelfAttention, {"query_chunk_size": None}, MAPS, MAPS.shape, _open_gate),
    "self_attention_chunks": (SelfAttention, {"query_chunk_size": 16, "pooling": False}, MAPS, MAPS.shape, _open_gate),
    "sn_dense": (SpectralNormalization, {"layer": keras.layers.Dense(4)}, VECTORS, (2, 4), None),
    "sn_conv2d": (
        SpectralNormalization,
        {"layer": keras.layers.Conv2D(4, 3, padding="same")},
        IMAGES,
        (2, 8, 8, 4),
        None,
    ),
    "sn_conv2d_transpose": (
        SpectralNormalization,
        {"layer": keras.layers.Conv2DTranspose(4, 4, 2, padding="same"), "power_iterations": 2},
        IMAGES,
        (2, 16, 16, 4),
        None,
    ),
    "sn_embedding": (SpectralNormalization, {"layer": keras.layers.Embedding(6, 4)}, TOKENS, (2, 3, 4), None),
    "batch_norm": (BatchNormalization, {"momentum": 0.9, "epsilon": 1e-5}, IMAGES, IMAGES.shape, None),
    "batch_norm_synchronized": (BatchNormalization, {"synchronized": True}, IMAGES, IMAGES.shape, None),
    "conditional_batch_norm": (ConditionalBatchNormalization, {"num_classes": 3}, (IMAGES, LABELS), IMAGES.shape, None),
    "conditional_batch_norm_blend": (
        ConditionalBatchNormalization,
        {"num_classes": 3},
        (IMAGES, CLASS_WEIGHTS),
        IMAGES.shape,
        None,
    ),
    "generator_block": (GeneratorBlock, {"filters": 8}, MAPS, (2, 16, 16, 8), None),
    "generator_block_conditional": (
        GeneratorBlock,
        {"filters": 8, "num_classes": 3},
        (MAPS, LABELS),
        (2, 16, 16, 8),
        None,
    ),
    "discriminator_block": (DiscriminatorBlock, {"filters": 8}, MAPS, (2, 4, 4, 8), None),
    "discriminator_block_first": (
        DiscriminatorBlock,
        {"filters": 8, "downsample": False, "preactivation": False},
        IMAGES,
        (2, 8, 8, 8),
        None,
    ),
    "dcgan_up_stage": (dcgan_up_stage, {"filters": 8}, MAPS, (2, 16, 16, 8), None),
    "dcgan_down_stage": (dcgan_down_stage, {"filters": 8}, IMAGES, (2, 4, 4, 8), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_harness(name, tmp_path):
    cls, init_kwargs, inputs, expected_shape, before_fit = CASES[name]
    run_layer_test(cls, init_kwargs, inputs, expected_shape, tmp_path, before_fit=before_fit)
