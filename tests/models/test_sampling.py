"""`models.sampling`: the one label rule (`class_cycle`) and `sample`, against hand-written labels."""

import keras
import numpy as np
import pytest

from keras_sagan.models.presets import build_generator
from keras_sagan.models.sampling import class_cycle, sample


def test_the_label_rule_by_hand():
    np.testing.assert_array_equal(class_cycle(5, 3), [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(class_cycle(5, 3, start=2), [2, 0, 1, 2, 0])
    np.testing.assert_array_equal(class_cycle(4, 10, start=-1), [9, 0, 1, 2])
    np.testing.assert_array_equal(class_cycle(3, 7, start=2**63 - 1), [0, 1, 2])  # 2**63 = 8**21 = 1 (mod 7)
    assert class_cycle(4, 3).dtype == np.int32 and class_cycle(4, None) is None


@pytest.fixture(scope="module")
def conditional():
    return build_generator("cifar10_32", conv_dim=8, z_dim=16, num_classes=3)


def test_sample_gives_a_conditional_generator_the_rules_labels(conditional):
    z = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    expected = conditional(z, np.array([0, 1, 2, 0], np.int32), training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(sample(conditional, z)), expected)
    given = conditional(z, np.array([2, 2, 1, 0], np.int32), training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(sample(conditional, z, np.array([2, 2, 1, 0]))), given)


def test_sample_of_an_unconditional_generator_and_its_maps():
    generator = build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16)
    z = np.random.default_rng(1).standard_normal((2, 16)).astype("float32")
    images, maps = sample(generator, z, return_attention=True)
    expected, expected_maps = generator(z, training=False, return_attention=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(images), keras.ops.convert_to_numpy(expected))
    assert len(maps) == len(expected_maps) == len(generator.attention_layers) > 0


def test_the_serving_graph_uses_the_same_rule():
    saved_model = pytest.importorskip("keras_sagan.export.saved_model")
    for seed in (0, 5, 13, -4, 2**62 + 3):
        np.testing.assert_array_equal(saved_model.sample_labels(7, 3, seed).numpy(), class_cycle(7, 3, start=seed))
