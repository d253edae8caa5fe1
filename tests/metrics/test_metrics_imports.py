"""`import keras_sagan.metrics` loads no TensorFlow on JAX or torch: the FID network runs on any backend."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_importing_the_metrics_loads_no_tensorflow(backend):
    # In a fresh process: this one has TensorFlow loaded already. (On torch, TensorFlow imported before Keras can
    # segfault, which is one more reason the package must not import it.)
    code = (
        "import sys, keras_sagan.metrics, keras_sagan.metrics.certificate, keras_sagan.cli.evaluate\n"
        "import keras\n"
        f"assert keras.backend.backend() == {backend!r}, keras.backend.backend()\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
