"""SAGAN on JAX: keras.distribution.DataParallel equals one device, a stateless step, JAX-only refusals."""

import keras
import numpy as np
import pytest
from test_sagan import Z_DIM, _build, _dataset, _equal_start, _images

pytestmark = pytest.mark.jax

jax = pytest.importorskip("jax")


def _sgd_pair():
    return {"g_optimizer": keras.optimizers.SGD(0.05), "d_optimizer": keras.optimizers.SGD(0.05)}


def test_data_parallel_on_two_devices_equals_one_device_with_the_same_global_batch():
    devices = jax.devices("cpu")
    assert len(devices) == 2, "conftest.py sets --xla_force_host_platform_device_count=2"
    single = _build()
    single.compile(**_sgd_pair())
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        parallel = _build()
        parallel.compile(**_sgd_pair())
    _equal_start(single.generator, parallel.generator)
    _equal_start(single.discriminator, parallel.discriminator)
    dataset = _dataset(_images(16), 8)  # two steps of global batch 8
    single.fit(dataset, epochs=1, verbose=0)
    with distribution.scope():
        parallel.fit(dataset, epochs=1, verbose=0)
    kernel = parallel.generator.trainable_weights[0].value
    assert len(kernel.sharding.device_set) == 2  # the weights really live on both devices
    for a, b in zip(
        single.generator.weights + single.discriminator.weights,
        parallel.generator.weights + parallel.discriminator.weights,
    ):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, err_msg=a.path)


def test_train_step_is_stateless():
    gan = _build()
    gan.compile(ema_decay=0.5)
    state = (
        [v.value for v in gan.trainable_variables],
        [v.value for v in gan.non_trainable_variables],
        [v.value for v in gan.optimizer.variables],
        [v.value for v in gan.metrics_variables],
    )
    before = [np.asarray(v) for v in gan.variables]
    logs, new_state = jax.jit(gan.train_step)(state, _images(4))
    assert all(np.array_equal(np.asarray(v), b) for v, b in zip(gan.variables, before))  # nothing assigned
    assert [len(group) for group in new_state] == [len(group) for group in state]
    moved = {v.path for v, a, b in zip(gan.trainable_variables, state[0], new_state[0]) if not np.array_equal(a, b)}
    # Every gamma and every kernel outside the attention blocks moved; the attention projections
    # get zero gradients while gamma is 0 (their output is scaled by it), as on TensorFlow.
    for v in gan.trainable_variables:
        if v.path.endswith("gamma") or (v.path.endswith("kernel") and "attention" not in v.path):
            assert v.path in moved, v.path
        if "attention" in v.path and not v.path.endswith("gamma"):
            assert v.path not in moved, v.path
    # D's optimizer state and the seed rode in the non-trainable values and advanced:
    d_iterations = gan.non_trainable_variables.index(gan.d_optimizer.iterations)
    assert int(new_state[1][d_iterations]) == 1
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))


def test_mixed_float16_is_refused_on_jax():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with pytest.raises(ValueError, match='`dtype policy` must be not "mixed_float16" on JAX'):
            _build().compile()
    finally:
        keras.config.set_dtype_policy("float32")


def test_generator_calls_are_jittable_stateless_calls():
    gan = _build()
    z = np.random.default_rng(0).normal(size=(2, Z_DIM)).astype("float32")
    generator = gan.generator
    images, _ = jax.jit(lambda t, n, z: generator.stateless_call(t, n, z, training=False))(
        [v.value for v in generator.trainable_variables], [v.value for v in generator.non_trainable_variables], z
    )
    np.testing.assert_allclose(images, generator(z, training=False), atol=1e-6)


def test_a_signal_inside_the_train_step_stops_after_it_with_every_variable_readable():
    """Ctrl-C's handler runs wherever Python is when the signal lands, also inside fit()'s call of the
    step, after JAX consumed (donated) the previous step's state and before fit() records the new one.
    It must not touch the model's state there (the `Callback.model` property syncs it on JAX): that
    attached the consumed buffers to the variables, and every later read failed with "Array has been
    deleted" (seen on a multi-process run, where the step waits on its peers)."""
    import os
    import signal

    from keras_sagan.training.callbacks import InterruptHandler

    gan = _build()
    gan.compile(**_sgd_pair())
    lines = []
    handler = InterruptHandler(print_fn=lines.append)
    make_train_function = gan.make_train_function
    calls = []

    def make_signalling_train_function(force=False):
        make_train_function(force)
        step = gan.train_function

        def signalling(state, iterator):
            outputs = step(state, iterator)
            calls.append(len(calls) + 1)
            if len(calls) == 2:  # Before the second call returns: the first step's state is consumed.
                os.kill(os.getpid(), signal.SIGINT)
            return outputs

        gan.train_function = signalling

    gan.make_train_function = make_signalling_train_function
    gan.fit(_dataset(_images(16), 4), epochs=1, callbacks=[handler], verbose=0)
    assert calls == [1, 2] and handler.interrupted == "SIGINT"  # It stopped after the signalled step.
    assert gan.step == 2
    for variable in gan.variables:
        assert np.all(np.isfinite(np.asarray(variable, dtype="float64"))), variable.path
    assert lines == ["SIGINT received: saving a checkpoint after this step (send it again to abort at once)"]
