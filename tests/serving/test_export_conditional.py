"""A class-conditional generator's export: `labels` in both signatures."""

import numpy as np
import pytest
import tensorflow as tf

import keras_sagan
from keras_sagan.export import saved_model

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def generator():
    return keras_sagan.build_generator("cifar10_32", conv_dim=4, num_classes=NUM_CLASSES)


@pytest.fixture(scope="module")
def loaded(generator, tmp_path_factory):
    return tf.saved_model.load(saved_model.export_generator(generator, tmp_path_factory.mktemp("cond") / "cifar"))


def _sample(loaded, num_images, seed, labels, truncation=0.0):
    return loaded.signatures["sample"](
        num_images=tf.constant(num_images),
        seed=tf.constant(seed, tf.int64),
        truncation=tf.constant(truncation),
        labels=tf.constant(labels, tf.int32, shape=[len(labels)]),
    )["images"].numpy()


def test_signature_inputs(loaded):
    serving = loaded.signatures["serving_default"].structured_input_signature[1]
    assert serving["labels"] == tf.TensorSpec([None], tf.int32, name="labels")
    assert set(loaded.signatures["sample"].structured_input_signature[1]) == {
        "num_images",
        "seed",
        "truncation",
        "labels",
    }


def test_serving_default_matches_keras(generator, loaded):
    z = np.random.RandomState(0).randn(4, 128).astype("float32")
    labels = np.array([0, 3, 9, 3], "int32")
    images = loaded.signatures["serving_default"](z=tf.constant(z), labels=tf.constant(labels))["images"]
    np.testing.assert_allclose(images.numpy(), np.asarray(generator(z, labels, training=False)), atol=1e-5)


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0, 1], "one entry per row of z"),
        ([0, 1, 10, 2], r"labels must be in \[0, 10\)"),
        ([0, -1, 0, 0], r"labels must be in \[0, 10\)"),
    ],
)
def test_bad_labels(loaded, labels, message):
    z = tf.zeros([4, 128])
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["serving_default"](z=z, labels=tf.constant(labels, tf.int32))


def test_sample_with_labels(loaded):
    labels = [1, 2, 3]
    images = _sample(loaded, 3, 5, labels, truncation=0.8)
    z = saved_model.sample_z(tf.constant(3), 128, tf.constant(5, tf.int64), tf.constant(0.8))
    direct = loaded.signatures["serving_default"](z=z, labels=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(images, direct, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per row"):
        _sample(loaded, 4, 5, labels)


def test_sample_without_labels_cycles_the_classes_from_the_seed(loaded):
    # models.sampling's rule: image i of seed s gets class (s + i) mod 10; seed 13 starts at class 3.
    a = _sample(loaded, 12, 13, [])
    np.testing.assert_array_equal(a, _sample(loaded, 12, 13, [3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4]))
    assert a.shape == (12, 32, 32, 3)
