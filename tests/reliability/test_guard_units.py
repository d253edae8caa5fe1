"""The divergence guard and the checkpoint saver on their own: non-finite logs stop `fit()`, nothing
non-finite is saved, a save that fails for lack of space is one line, and InceptionV3 refuses NaN."""

import errno
import math
import os
import types

import numpy as np
import pytest

import keras_sagan
from keras_sagan.checkpoint import reading, state_file
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.checkpoint.names import nonfinite_variables
from keras_sagan.export.loading import ModelLoadError, check_finite_generator
from keras_sagan.metrics.fid_network import FIDInceptionExtractor
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training.callbacks import CheckpointSaveError, CheckpointSaver
from keras_sagan.training.guard import DivergenceGuard, TrainingDiverged, rollback


def _stepped_model(step):
    return types.SimpleNamespace(step=step, stop_training=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_guard_stops_at_the_first_non_finite_log(bad):
    lines = []
    guard = DivergenceGuard(print_fn=lines.append)
    model = _stepped_model(7)
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_train_batch_end(0, {"d_loss": 1.5, "g_loss": np.float32(2.0), "name": "text"})
    assert guard.diverged is None and not model.stop_training
    model.step = 8
    guard.on_train_batch_end(1, {"d_loss": 1.5, "g_loss": bad})
    assert model.stop_training
    assert guard.diverged.step == 8 and list(guard.diverged.values) == ["g_loss"]
    assert len(lines) == 1 and "g_loss" in lines[0] and "step 8" in lines[0]
    error = str(TrainingDiverged(guard.diverged, "run/checkpoints/ckpt-6"))
    assert "step 8" in error and "run/checkpoints/ckpt-6" in error and "\n" not in error


@pytest.fixture(scope="module")
def tiny_gan():
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, z_dim=16, seed=0)
    gan.compile()
    return gan


def test_saver_never_saves_non_finite_weights_nor_after_the_guard_tripped(tiny_gan, tmp_path):
    run = RunDirectory(tmp_path)
    manager = CheckpointManager(tiny_gan, run.checkpoints_dir, max_to_keep=1)
    guard = DivergenceGuard(print_fn=lambda line: None)
    saver = CheckpointSaver(manager, every=1, guard=guard)
    saver.set_model(tiny_gan)
    assert saver.save(1).endswith("ckpt-1.state.npz")  # Finite: saved.
    kernel = tiny_gan.generator.to_rgb.kernel
    good = kernel.numpy()
    try:
        kernel.assign(np.where(np.arange(good.size).reshape(good.shape) == 0, np.nan, good))
        assert nonfinite_variables(tiny_gan.generator.weights) == [kernel.path]
        with pytest.raises(ModelLoadError, match="non-finite weights"):
            check_finite_generator(tiny_gan.generator, "the generator")
        assert saver.save(2) is None  # keep=1: a save would have rotated ckpt-1 out.
    finally:
        kernel.assign(good)
    guard.diverged = object()
    assert saver.save(3) is None
    assert saver.skipped == [2, 3]
    assert reading.checkpoint_paths(run) == [os.path.join(run.checkpoints_dir, "ckpt-1.state.npz")]


def test_a_save_without_space_is_one_line_and_keeps_the_previous_checkpoint(tiny_gan, tmp_path, monkeypatch):
    run = RunDirectory(tmp_path)
    manager = CheckpointManager(tiny_gan, run.checkpoints_dir, max_to_keep=3)
    saver = CheckpointSaver(manager, every=1)
    saver.set_model(tiny_gan)
    saver.save(1)

    def full_disk(file, **arrays):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file.name)

    monkeypatch.setattr(state_file.np, "savez", full_disk)
    with pytest.raises(CheckpointSaveError) as info:
        saver.save(2)
    message = str(info.value)
    assert "\n" not in message and manager.directory in message and "No space left" in message
    assert "ckpt-1" in message  # The kept one.
    assert os.listdir(manager.directory) == ["ckpt-1.state.npz"]  # The temporary was removed.


def test_rollback_restores_and_lowers_both_learning_rates(tiny_gan):
    restored = []
    tiny_gan.g_optimizer.learning_rate = 1e-3
    tiny_gan.d_optimizer.learning_rate = 4e-3
    g_lr, d_lr = rollback(tiny_gan, restored.append, "ckpt-5", factor=0.1)
    assert restored == ["ckpt-5"]
    np.testing.assert_allclose([g_lr, d_lr], [1e-4, 4e-4], rtol=1e-6)
    np.testing.assert_allclose(float(tiny_gan.g_optimizer.learning_rate.numpy()), 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(tiny_gan.d_optimizer.learning_rate.numpy()), 4e-4, rtol=1e-6)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_inception_preprocessing_rejects_non_finite_images(bad):
    extractor = FIDInceptionExtractor.__new__(FIDInceptionExtractor)  # preprocess needs no network.
    extractor.resize_method = "bilinear"
    images = np.zeros((2, 8, 8, 3), "float32")
    images[1, 3, 3, 0] = bad
    with pytest.raises(ValueError, match="^`images` must be finite; received 1 NaN or inf values$"):
        extractor.preprocess(images)
