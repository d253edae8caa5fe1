"""The same numbers on TensorFlow and JAX: one network's files, loaded on either backend, agree.

Each backend runs in a process of its own (`backend_worker.py`), so this test runs under any
`KERAS_BACKEND`. Files written on TensorFlow are loaded on both backends, and files written on
JAX too; outputs must agree within 1e-5 (inference and training mode, attention maps, `.keras`
files), and the weights after one SAGAN step from the same state and noise within 1e-4.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("tensorflow")

WORKER = pathlib.Path(__file__).with_name("backend_worker.py")


def _run(backend, source, out, make=False):
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, str(WORKER), str(source), str(out)] + (["--make"] if make else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    results = dict(np.load(out))
    assert str(results.pop("backend")) == backend
    return results


def _compare(a, b):
    assert sorted(a) == sorted(b)
    assert any("_step_w" in key for key in a) and any("_map" in key for key in a)
    for key in a:
        tolerance = 1e-4 if "_step_w" in key else 1e-5
        np.testing.assert_allclose(b[key], a[key], atol=tolerance, rtol=tolerance, err_msg=key)


@pytest.mark.parametrize("writer, reader", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_files_written_on_one_backend_give_the_same_numbers_on_the_other(tmp_path, writer, reader):
    source = tmp_path / "files"
    source.mkdir()
    written = _run(writer, source, tmp_path / "writer.npz", make=True)
    read = _run(reader, source, tmp_path / "reader.npz")
    _compare(written, read)
    # The step really trained (so the weight comparison can fail), and training mode differs.
    assert not np.allclose(written["dcgan_inference_g"], written["dcgan_training_g"], atol=1e-3)
