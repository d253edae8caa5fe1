"""The checkpoint format (`keras_sagan.checkpoint`): every piece of state back, its record, atomic, rotated."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_sagan
from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.checkpoint.names import state_variables
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.run_directory import RunDirectory, RunDirectoryError


def _gan(conv_dim=8, seed=0):
    keras.utils.set_random_seed(seed)
    gan = keras_sagan.build_sagan("celeba64", seed=seed, image_size=32, conv_dim=conv_dim, z_dim=16)
    gan.compile(ema_decay=0.9)
    return gan


def test_restore_brings_every_variable_back_and_rotation_keeps_the_newest(tmp_path):
    source = _gan(seed=1)
    for variables in state_variables(source).values():  # non-trivial values everywhere
        for i, v in enumerate(variables):
            v.assign(np.full(v.shape, i + 0.5, v.dtype) if "int" not in str(v.dtype) else np.full(v.shape, i + 3))
    record = {"generator": source.generator.get_config(), "train": {"loss": "hinge"}}
    manager = CheckpointManager(source, str(tmp_path / "checkpoints"), max_to_keep=2, record=record)
    for step in (5, 10, 15):
        manager.save(checkpoint_number=step)
    assert [os.path.basename(p) for p in manager.checkpoints] == ["ckpt-10.state.npz", "ckpt-15.state.npz"]
    assert not [name for name in os.listdir(tmp_path / "checkpoints") if ".tmp-" in name]
    target = _gan(seed=2)
    reading.restore_path(target, manager.latest_checkpoint)
    groups = state_variables(source)
    assert set(groups) == {"generator", "discriminator", "ema_generator", "g_optimizer", "d_optimizer", "step",
                           "seed_state"}  # fmt: skip
    for name, variables in groups.items():
        for a, b in zip(variables, state_variables(target)[name]):
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=f"{name}/{a.path}")
    assert reading.latest_checkpoint(RunDirectory(tmp_path)) == manager.latest_checkpoint
    # The record travels inside the file, JSON-equal to what was given.
    assert read_state(manager.latest_checkpoint).record == record


def test_another_configuration_is_refused_in_one_line_and_nothing_changes(tmp_path):
    path = CheckpointManager(_gan(conv_dim=8), str(tmp_path), max_to_keep=2).save(1)
    other = _gan(conv_dim=16)
    before = [np.asarray(v) for v in other.generator.weights]
    with pytest.raises(RunDirectoryError, match=r"does not match this configuration \(generator/\d+ has shape"):
        reading.restore_path(other, path)
    for a, b in zip(before, other.generator.weights):
        np.testing.assert_array_equal(np.asarray(b), a)
    (tmp_path / "ckpt-2.state.npz").write_bytes(b"garbage")
    with pytest.raises(RunDirectoryError, match="cannot read checkpoint .*ckpt-2.state.npz"):
        reading.restore_path(other, str(tmp_path / "ckpt-2.state.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_jax_or_torch_run_checkpoints_resumes_and_exports_through_tensorflow(tmp_path, backend):
    pytest.importorskip(backend)
    model_dir = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    flags = ["--conv_dim=8", "--z_dim=16", "--image_size=32", "--batch_size=8", "--sample_every=1000",
             "--log_every=2", "--checkpoint_every=2", "--keep_checkpoints=2", f"--model_dir={model_dir}"]  # fmt: skip
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "train_celeba.py")
    runs = []
    for steps in (4, 6):
        result = subprocess.run([sys.executable, script, f"--steps={steps}", *flags], env=env, capture_output=True,
                                text=True, timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(result.stdout)
    assert "resumed from" in runs[1] and "ckpt-4.state.npz at step 4" in runs[1]
    assert sorted(os.listdir(model_dir / "checkpoints")) == ["ckpt-4.state.npz", "ckpt-6.state.npz"]
    assert "through TensorFlow" in runs[1]
    loaded = keras_sagan.load_generator(str(model_dir / "export"))  # the SavedModel of step 6's weights
    run_generator = keras_sagan.load_generator(str(model_dir))
    z = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    np.testing.assert_allclose(loaded(z), run_generator(z), atol=1e-5)
