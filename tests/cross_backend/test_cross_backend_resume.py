"""A run trained on one backend resumes on another at the same step with the same weights.

JAX trains two steps; TensorFlow restores that checkpoint (every variable must equal the file's arrays,
read with NumPy alone) and trains a third; JAX and torch then restore TensorFlow's checkpoint the same
way. Each backend runs in a process of its own (`resume_worker.py`).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("tensorflow")

WORKER = pathlib.Path(__file__).with_name("resume_worker.py")


def _run(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _assert_restored(state_out, checkpoint):
    """Every variable restored on the reading backend equals the checkpoint file's array (NumPy's own reader)."""
    restored = dict(np.load(state_out))
    assert str(restored.pop("path")) == str(checkpoint)
    with np.load(checkpoint) as stored:
        keys = sorted(key for key in stored.files if "/" in key)
        assert sorted(restored) == keys
        for key in keys:
            np.testing.assert_array_equal(restored[key], stored[key], err_msg=key)
        return int(stored["step/0000"])


@pytest.mark.slow
def test_a_jax_run_resumes_on_tensorflow_and_the_other_way_round(tmp_path):
    run = tmp_path / "run"
    assert "initial_step=0 step=2" in _run("jax", run, 2)
    checkpoints = run / "checkpoints"
    out = _run("tensorflow", run, 3, tmp_path / "on_tf.npz")
    assert "initial_step=2 step=3" in out
    assert _assert_restored(tmp_path / "on_tf.npz", checkpoints / "ckpt-2.state.npz") == 2
    readers = ["jax"] + (["torch"] if _importable("torch") else [])
    for backend in readers:  # TensorFlow's checkpoint, restored on the others.
        _run(backend, run, "-", tmp_path / f"on_{backend}.npz")
        assert _assert_restored(tmp_path / f"on_{backend}.npz", checkpoints / "ckpt-3.state.npz") == 3


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True
