"""SAGAN under tf.distribute: replicas equal one device, one iterator, per-replica XLA (TensorFlow only)."""

import keras
import numpy as np
import pytest
from test_sagan import _build, _dataset, _equal_start, _images

pytestmark = pytest.mark.tensorflow

tf = pytest.importorskip("tensorflow")


def test_two_replicas_equal_one_replica_with_the_same_global_batch():
    # SGD, not Adam: Adam divides out the gradient scale, so only SGD shows
    # whether losses are divided by the global batch.
    single = _build()
    single.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    mirrored = _build(strategy)
    with strategy.scope():
        mirrored.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
    _equal_start(single.generator, mirrored.generator)
    _equal_start(single.discriminator, mirrored.discriminator)
    dataset = _dataset(_images(16), 8)  # two steps
    single.fit(dataset, epochs=1, verbose=0)
    mirrored.fit(dataset, epochs=1, verbose=0)
    for a, b in zip(
        single.generator.weights + single.discriminator.weights,
        mirrored.generator.weights + mirrored.discriminator.weights,
    ):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5, err_msg=a.path)


def test_fit_under_a_strategy_starts_one_iterator():
    # Keras' fit() under a strategy starts a first iterator for a probe batch,
    # which moves a shuffled pipeline on, so replicas would train on other
    # batches than one device. SAGAN skips that build (everything is built).
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    gan = _build(strategy)
    with strategy.scope():
        gan.compile()
    iterators_started = []
    images = _images(8)

    def examples():
        iterators_started.append(True)
        yield from images

    spec = tf.TensorSpec((32, 32, 3), tf.float32)
    dataset = tf.data.Dataset.from_generator(examples, output_signature=spec).batch(4, drop_remainder=True)
    gan.fit(dataset, epochs=1, verbose=0)
    assert len(iterators_started) == 1


def test_jit_compile_on_one_device_and_per_replica_under_mirrored():
    gan = _build()
    gan.compile(jit_compile=True)
    assert gan.jit_compile is True
    history = gan.fit(_dataset(_images(), 4), epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"]).all()

    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    mirrored = _build(strategy)
    with strategy.scope():
        mirrored.compile(jit_compile=True)
    assert mirrored.jit_compile is False  # whole-step XLA off; D gradients compiled per replica
    assert isinstance(mirrored._d_gradients, tf.types.experimental.GenericFunction)
    history = mirrored.fit(_dataset(_images(), 4), epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"]).all()
