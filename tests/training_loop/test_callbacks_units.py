"""The training callbacks and their helpers, one piece at a time, with stub models where possible."""

import os
import signal
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_sagan.images import make_grid, to_uint8
from keras_sagan.models import build_discriminator, build_generator
from keras_sagan.training import callbacks as cb
from keras_sagan.training.steps import IntervalMeans, current_step
from keras_sagan.training.tensorboard import (
    SampleGridWriter,
    TensorBoardLogger,
    fixed_noise,
    generate,
    spectral_norm_layers,
    spectral_norms,
)


class StubModel:
    """What the callbacks read from a SAGAN: the step, and optionally a sampling generator."""

    def __init__(self, generator=None):
        self.g_optimizer = types.SimpleNamespace(iterations=tf.Variable(0, dtype=tf.int64))
        self.generator = generator
        self.stop_training = False

    def sampling_generator(self):
        return self.generator


def _drive(callback, model, steps, logs_for_step=lambda step: {}):
    callback.set_model(model)
    callback.on_train_begin()
    for step in range(1, steps + 1):
        model.g_optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1, logs_for_step(step))
    callback.on_train_end()


def test_current_step_prefers_the_models_step_property():
    model = StubModel()
    model.g_optimizer.iterations.assign(7)
    assert current_step(model) == 7  # No `step`: the generator optimizer's iterations.
    model.step = tf.Variable(12, dtype=tf.int64)
    assert current_step(model) == 12
    model.step = 3  # A property may give a plain int.
    assert current_step(model) == 3


def test_callbacks_and_loop_export_only_what_they_define():
    from keras_sagan.training import loop

    for module in (cb, loop):
        borrowed = [name for name in module.__all__ if getattr(module, name).__module__ != module.__name__]
        assert borrowed == [], f"{module.__name__}.__all__ re-exports {borrowed}"


def test_generate_returns_uint8_numpy_images_and_cycles_labels():
    generator = build_generator("cifar10_32", conv_dim=8, z_dim=16, num_classes=3)
    z = fixed_noise(4, 16, seed=1)
    images = generate(generator, z)
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.shape == (4, 32, 32, 3)
    labels = np.array([0, 1, 2, 0], np.int32)
    expected = np.clip(np.round((np.asarray(generator(z, labels, training=False)) + 1.0) * 127.5), 0, 255)
    np.testing.assert_array_equal(images, expected.astype(np.uint8))


def test_interval_means_undo_the_running_mean():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    means = IntervalMeans(["d_loss"])
    assert means.update(2, {"d_loss": values[:2].mean()}) == {"d_loss": 1.5}
    np.testing.assert_allclose(means.update(5, {"d_loss": values[:5].mean()})["d_loss"], 4.0)
    np.testing.assert_allclose(means.update(6, {"d_loss": values.mean()})["d_loss"], 6.0)


def test_spectral_norm_paths_are_attribute_paths():
    generator = build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16, attention_variant="sagan")
    discriminator = build_discriminator("celeba64", image_size=32, conv_dim=8)
    paths = set(spectral_norm_layers(generator))
    assert {"initial/0", "up0/0", "up1/0", "attention_16/query", "attention_8/output_projection"} <= paths
    assert set(spectral_norm_layers(discriminator)) == {"down0/0", "down1/0", "down2/0"}
    sigmas = spectral_norms(generator)
    layer = spectral_norm_layers(generator)["up0/0"]
    assert sigmas["up0/0"] == pytest.approx(float(layer.spectral_norm()))
    assert all(np.isfinite(s) and s > 0 for s in sigmas.values())


def test_progress_logger_prints_interval_means_and_throughput():
    lines = []
    logger = cb.ProgressLogger(total_steps=5, global_batch_size=8, every=2, print_fn=lines.append)
    d_losses = [1.0, 3.0, 5.0, 7.0, 9.0]
    _drive(logger, StubModel(), 5, lambda s: {"d_loss": np.mean(d_losses[:s]), "g_loss": 0.5})
    assert [line.split("  ")[:2] for line in lines] == [
        ["step 2/5", "d_loss 2.0000"],
        ["step 4/5", "d_loss 6.0000"],
        ["step 5/5", "d_loss 9.0000"],  # The last step always gets a line.
    ]
    assert all(line.endswith("images/s") and "g_loss 0.5000" in line for line in lines)
    assert not hasattr(logger, "lines")  # Printed, not kept.


def test_checkpoint_saver_saves_on_the_interval_and_once_at_the_end(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(tmp_path), max_to_keep=2)
    model = StubModel()
    model.g_optimizer.iterations = step
    saver = cb.CheckpointSaver(manager, every=2)
    _drive(saver, model, 5)
    assert [s for s, _ in saver.saved] == [2, 4, 5]
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-4", "ckpt-5"]  # max_to_keep
    _drive(cb.CheckpointSaver(manager, every=5), model, 5)  # Ends on an interval: saved once.
    assert manager.latest_checkpoint.endswith("ckpt-5") and len(manager.checkpoints) == 2


def test_sample_grid_writer_uses_fixed_noise_and_the_sampling_generator(tmp_path):
    generator = build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16)
    writer = SampleGridWriter(str(tmp_path / "samples"), every=2, num_samples=4, seed=7)
    _drive(writer, StubModel(generator), 3)
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_000002.png", "step_000003.png"]
    expected = make_grid(to_uint8(generator(fixed_noise(4, 16, seed=7), training=False)))  # A tensor: converted.
    for name in ("step_000002.png", "step_000003.png"):  # Same weights, same noise: same grid.
        with Image.open(tmp_path / "samples" / name) as image:
            np.testing.assert_array_equal(np.asarray(image), expected)


def test_tensorboard_logger_writes_scalars_sigmas_samples_and_attention(tmp_path):
    generator = build_generator("celeba64", image_size=32, conv_dim=8, z_dim=16, attention_variant="sagan")
    model = StubModel(generator)
    model.discriminator = build_discriminator("celeba64", image_size=32, conv_dim=8)
    logger = TensorBoardLogger(str(tmp_path), global_batch_size=2, scalar_every=2, image_every=2, num_samples=4)
    _drive(logger, model, 2, lambda s: {"d_loss": 1.0, "g_loss": 2.0, "gamma_G16": 0.5})
    events = [
        value
        for name in os.listdir(tmp_path)
        for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name))
        for value in event.summary.value
    ]
    tags = {value.tag: value for value in events}
    assert {"loss/d", "loss/g", "gamma/G16", "perf/images_per_second", "samples", "attention/G16"} <= set(tags)
    assert {"sigma/generator/up0/0", "sigma/generator/attention_16/query", "sigma/discriminator/down2/0"} <= set(tags)
    assert float(tf.make_ndarray(tags["loss/d"].tensor)) == 1.0
    # 2 x 2 samples of 32 + 1 pixels: 67, nearest-upscaled x4 to reach 256.
    assert tf.io.decode_png(tf.make_ndarray(tags["samples"].tensor)[2]).shape == (268, 268, 3)
    # 4 samples x (image + 3 query overlays) of 33 pixels: 133, upscaled x2.
    assert tf.io.decode_png(tf.make_ndarray(tags["attention/G16"].tensor)[2]).shape == (266, 266, 3)


def test_interrupt_handler_stops_after_the_step_and_restores_the_handler():
    previous = signal.getsignal(signal.SIGINT)
    handler = cb.InterruptHandler(print_fn=lambda line: None)
    model = StubModel()
    handler.set_model(model)
    handler.on_train_begin()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        # The handler only records it (it may run inside a JAX step); the end of the step stops fit().
        assert handler.interrupted == "SIGINT" and not model.stop_training
        handler.on_train_batch_end(0)
        assert model.stop_training
        with pytest.raises(KeyboardInterrupt):  # A second Ctrl-C aborts at once.
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        handler.on_train_end()
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_signal_inside_a_print_to_the_same_stream_is_said_after_the_step():
    lines = []

    def print_fn(line):
        if not lines:  # What a print interrupted by its own stream's signal handler raises.
            lines.append(None)
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stdout>'>")
        lines.append(line)

    handler = cb.InterruptHandler(print_fn=print_fn)
    model = StubModel()
    handler.set_model(model)
    handler.on_train_begin()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert handler.interrupted == "SIGINT" and lines == [None]
        handler.on_train_batch_end(0)
    finally:
        handler.on_train_end()
    assert lines == [None, "SIGINT received: saving a checkpoint after this step (send it again to abort at once)"]
    assert model.stop_training


def test_a_batch_that_does_not_advance_the_step_is_not_a_new_step(tmp_path):
    # Under mixed_float16, loss scaling skips an overflowing update and iterations stays put.
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), str(tmp_path), max_to_keep=5)
    model = StubModel()
    model.g_optimizer.iterations = step
    lines = []
    saver = cb.CheckpointSaver(manager, every=2)
    logger = cb.ProgressLogger(total_steps=3, global_batch_size=1, every=2, print_fn=lines.append)
    for callback in (saver, logger):
        callback.set_model(model)
        callback.on_train_begin()
    d_losses = [1.0, 3.0, 5.0, 7.0]  # The second batch is the skipped one.
    for batch, value in enumerate([1, 2, 2, 3]):
        step.assign(value)
        for callback in (saver, logger):
            callback.on_train_batch_end(batch, {"d_loss": np.mean(d_losses[: batch + 1])})
    saver.on_train_end()
    assert [s for s, _ in saver.saved] == [2, 3]
    # Means are over batches (the metric updates), labels are steps.
    assert [line.split("  ")[:2] for line in lines] == [["step 2/3", "d_loss 2.0000"], ["step 3/3", "d_loss 6.0000"]]
