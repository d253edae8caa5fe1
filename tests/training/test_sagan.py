import keras
import numpy as np
import pytest

import keras_sagan
from keras_sagan.models.batch_norm_statistics import batch_norm_layers, recalibrate
from keras_sagan.training import LOSSES, SAGAN, TTUR, default_d_optimizer, default_g_optimizer

Z_DIM = 16


def _images(n=8, size=32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype("float32")


def _build(strategy=None, **overrides):
    if strategy is None:
        return keras_sagan.build_sagan("celeba64", seed=3, image_size=32, conv_dim=8, z_dim=Z_DIM, **overrides)
    with strategy.scope():
        return keras_sagan.build_sagan("celeba64", seed=3, image_size=32, conv_dim=8, z_dim=Z_DIM, **overrides)


def _dataset(images, batch, labels=None):
    import tensorflow as tf  # tf.data feeds fit() on both backends

    data = images if labels is None else (images, labels)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch, drop_remainder=True)


def _snapshot(model):
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("loss", ["hinge", "non-saturating", "wgan-gp"])
def test_train_steps_change_weights_and_keep_losses_finite(loss):
    gan = _build()
    gan.compile(loss=loss)
    g_before, d_before = _snapshot(gan.generator), _snapshot(gan.discriminator)
    history = gan.fit(_dataset(_images(), 4), epochs=2, verbose=0).history
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "gamma_G8", "gamma_G16", "gamma_D8", "gamma_D4"):
        assert np.isfinite(history[key]).all(), key
    changed = lambda before, model: sum(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))  # noqa: E731
    assert changed(g_before, gan.generator) > len(g_before) // 2
    assert changed(d_before, gan.discriminator) > len(d_before) // 2
    assert int(gan.g_optimizer.iterations) == 4 and int(gan.d_optimizer.iterations) == 4


def test_training_true_reaches_batch_norm_and_spectral_norm():
    gan = _build()
    gan.compile()
    bn = gan.generator.initial.layers[1]
    sn = gan.discriminator.stages[0].layers[0]
    moving_mean, u = bn.moving_mean.numpy(), sn.u.numpy()
    gan.fit(_dataset(_images(), 4), epochs=1, steps_per_epoch=1, verbose=0)
    assert not np.array_equal(bn.moving_mean.numpy(), moving_mean)
    assert not np.array_equal(sn.u.numpy(), u)


def test_d_steps_runs_that_many_discriminator_updates():
    gan = _build()
    gan.compile(d_steps=3)
    gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)
    assert int(gan.g_optimizer.iterations) == 2
    assert int(gan.d_optimizer.iterations) == 6


def test_wgan_gp_weight_changes_the_discriminator_loss():
    results = []
    for gp_weight in (0.0, 100.0):
        gan = _build()
        gan.compile(loss="wgan-gp", gp_weight=gp_weight)
        results.append(gan.fit(_dataset(_images(), 4), epochs=1, steps_per_epoch=1, verbose=0).history["d_loss"][0])
    # Same seed and weights init differ, so compare magnitudes: the penalty of
    # a freshly initialised critic (gradient norm far from 1) dominates.
    assert results[1] > results[0] + 10


def test_ema_is_the_exponential_moving_average_of_the_generator():
    gan = _build()
    gan.compile(ema_decay=0.75, g_optimizer=keras.optimizers.SGD(0.1))
    start = [w.numpy() for w in gan.generator.weights]
    gan.fit(_dataset(_images(), 4), epochs=1, steps_per_epoch=1, verbose=0)
    pairs = list(zip(start, gan.generator.weights, gan.ema_generator.weights))
    assert len(pairs) == len(gan.generator.weights) == len(gan.ema_generator.weights)
    for w0, w, ema in pairs:
        assert w.shape == ema.shape
        if w.trainable:
            np.testing.assert_allclose(ema.numpy(), 0.75 * w0 + 0.25 * w.numpy(), atol=1e-6)
        else:  # BatchNorm statistics and SN u are copied
            np.testing.assert_array_equal(ema.numpy(), w.numpy())
    assert gan.sampling_generator() is gan.ema_generator
    assert not gan.ema_generator.trainable_weights


def _moving_statistics(generator):
    return [v.numpy() for layer in batch_norm_layers(generator) for v in (layer.moving_mean, layer.moving_variance)]


def test_ema_samples_with_standing_statistics_by_default():
    gan = _build()
    gan.compile(ema_decay=0.5)
    gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)
    live = _moving_statistics(gan.generator)
    # The EMA update copied the live statistics; the reference: the same EMA weights, recalibrated apart.
    reference = keras_sagan.Generator.from_config(gan.ema_generator.get_config())
    reference.build()
    reference.set_weights(gan.ema_generator.get_weights())
    recalibrate(reference, num_batches=100, batch_size=64, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(_moving_statistics(gan.ema_generator), live))
    generator = gan.sampling_generator()
    assert generator is gan.ema_generator
    standing = _moving_statistics(generator)
    assert not any(np.allclose(a, b) for a, b in zip(standing, live))
    for a, b in zip(standing, _moving_statistics(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Once per step: asking again at the same step keeps them (a changed value would be re-estimated).
    first = gan.ema_generator.initial.layers[1].moving_mean
    first.assign(first.numpy() + 1.0)
    gan.sampling_generator()
    np.testing.assert_array_equal(first.numpy(), standing[0] + 1.0)


def test_ema_statistics_moving_keeps_the_copied_statistics():
    gan = _build()
    gan.compile(ema_decay=0.5, ema_statistics="moving")
    gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)
    live = _moving_statistics(gan.generator)
    assert all(np.array_equal(a, b) for a, b in zip(_moving_statistics(gan.sampling_generator()), live))


def test_recompiling_without_ema_drops_it():
    gan = _build()
    gan.compile(ema_decay=0.9)
    gan.compile(ema_decay=None)
    assert gan.ema_generator is None and gan.sampling_generator() is gan.generator
    history = gan.fit(_dataset(_images(), 4), epochs=1, steps_per_epoch=1, verbose=0).history
    assert np.isfinite(history["g_loss"]).all()


def test_conditional_training_uses_labels():
    gan = _build(architecture="resnet", num_classes=3, attention_variant="sagan")
    gan.compile()
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
    history = gan.fit(_dataset(_images(), 4, labels), epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"]).all()
    with pytest.raises(ValueError, match=r"must be \(images, labels\) pairs"):
        gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)


def _equal_start(source, target):
    for a, b in zip(target.weights, source.weights):
        a.assign(b.numpy())


def test_seed_makes_noise_reproducible():
    a, b = _build(), _build()
    _equal_start(a.generator, b.generator)
    _equal_start(a.discriminator, b.discriminator)
    for gan in (a, b):
        gan.compile()
        gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)
    for wa, wb in zip(a.generator.weights, b.generator.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())


def test_default_optimizers_are_the_papers_ttur():
    assert dict(TTUR) == {"g_lr": 1e-4, "d_lr": 4e-4, "beta1": 0.0, "beta2": 0.9}
    with pytest.raises(TypeError):
        TTUR["g_lr"] = 1.0  # read-only: the one owner of these defaults
    gan = _build()
    gan.compile()
    for optimizer, lr in ((gan.g_optimizer, 1e-4), (gan.d_optimizer, 4e-4)):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(lr)
        assert optimizer.beta_1 == 0.0 and optimizer.beta_2 == 0.9
    assert float(default_g_optimizer().learning_rate) == pytest.approx(TTUR["g_lr"])
    assert float(default_d_optimizer().learning_rate) == pytest.approx(TTUR["d_lr"])


def test_losses_names_the_choices():
    assert set(LOSSES) == {"hinge", "non-saturating", "wgan-gp"}


def test_step_counts_generator_updates_and_is_read_only():
    gan = _build()
    assert gan.step == 0  # before compile
    gan.compile(d_steps=2)
    gan.fit(_dataset(_images(), 4), epochs=1, verbose=0)
    assert gan.step == 2 and isinstance(gan.step, int)
    assert int(gan.d_optimizer.iterations) == 4
    with pytest.raises(AttributeError):
        gan.step = 5


def test_calling_the_gan_generates_with_the_generator():
    gan = _build()
    z = np.random.default_rng(0).normal(size=(2, Z_DIM)).astype("float32")
    np.testing.assert_array_equal(gan(z), gan.generator(z, training=False))
    assert not hasattr(gan, "jit_compile_setting")
    conditional = _build(architecture="resnet", num_classes=3, attention_variant="sagan")
    labels = np.array([0, 2])
    np.testing.assert_array_equal(conditional(z, labels), conditional.generator(z, labels, training=False))
    with pytest.raises(ValueError, match="`labels` must be None for the unconditional Generator"):
        gan(z, labels)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss": "lsgan"}, r"`loss` must be one of \['hinge', 'non-saturating', 'wgan-gp'\]; received: loss='lsgan'$"),
        ({"d_steps": 0}, "`d_steps` must be an int >= 1; received: d_steps=0$"),
        ({"ema_decay": 1.0}, r"`ema_decay` must be None or in \[0, 1\); received: ema_decay=1.0$"),
        (
            {"ema_statistics": "batch"},
            r"`ema_statistics` must be one of \['standing', 'moving'\]; received: ema_statistics='batch'$",
        ),
        ({"gp_weight": 5.0}, "`gp_weight` must be None with loss='hinge' .*; received: gp_weight=5.0$"),
        ({"loss": "wgan-gp", "gp_weight": -1.0}, "`gp_weight` must be >= 0; received: gp_weight=-1.0$"),
        ({"jit_compile": "yes"}, "`jit_compile` must be True, False or \"auto\"; received: jit_compile='yes'$"),
        pytest.param(
            {"jit_compile": False},
            '`jit_compile` must be True or "auto" on JAX .*; received: jit_compile=False$',
            marks=pytest.mark.jax,
        ),
    ],
)
def test_bad_compile_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _build().compile(**kwargs)


def test_mismatched_networks_and_config_round_trip():
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)
    with pytest.raises(
        ValueError,
        match=r"`discriminator.image_size` must be the generator's image_size \(32\); "
        r"received: discriminator.image_size=64$",
    ):
        SAGAN(generator, keras_sagan.build_discriminator("celeba64", conv_dim=8))
    gan = _build()
    restored = SAGAN.from_config(gan.get_config())
    assert restored.seed == 3
    assert restored.generator.get_config() == gan.generator.get_config()
    assert restored.discriminator.get_config() == gan.discriminator.get_config()


@pytest.mark.parametrize(
    "policy",
    [
        "mixed_bfloat16",
        pytest.param(
            "mixed_float16",
            marks=pytest.mark.skipif(keras.backend.backend() == "jax", reason="refused on JAX (test_sagan_jax.py)"),
        ),
    ],
)
def test_mixed_precision_keeps_sensitive_math_in_float32(policy):
    keras.config.set_dtype_policy(policy)
    try:
        gan = _build()
        gan.compile()
        history = gan.fit(_dataset(_images(), 4), epochs=1, verbose=0).history
        images = gan.generator(np.zeros((2, Z_DIM), "float32"), training=False)
        attention = gan.generator.attention_layers[-1]
        _, maps = gan.generator(np.zeros((2, Z_DIM), "float32"), return_attention=True)
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.isfinite(history["d_loss"]).all() and np.isfinite(history["g_loss"]).all()
    assert keras.backend.standardize_dtype(images.dtype) == "float32"
    assert keras.backend.standardize_dtype(maps[-1].dtype) == "float32"
    assert attention.compute_dtype == policy.split("_")[1]
    sn = gan.generator.initial.layers[0]
    assert sn.u.dtype == "float32" and sn.layer.kernel.dtype == "float32"
    loss_scaled = isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert loss_scaled == (policy == "mixed_float16")
