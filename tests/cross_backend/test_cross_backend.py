"""The same numbers on TensorFlow, JAX and torch: one network's files, loaded on any backend, agree.

Each backend runs in a process of its own (`backend_worker.py`), so this test runs under any
`KERAS_BACKEND`. Each backend writes its own files and every backend reads every backend's files
(all six writer/reader pairs, in five processes): outputs must agree within 1e-5 (inference and
training mode, attention maps, `.keras` files). From TensorFlow's files, each backend also runs one
SAGAN step with the same recorded noise; the weights after it must agree within 1e-4 for every
pair of backends.
"""

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("tensorflow")
pytest.importorskip("torch")

WORKER = pathlib.Path(__file__).with_name("backend_worker.py")
BACKENDS = ("tensorflow", "jax", "torch")
PAIRS = [pair for pair in itertools.product(BACKENDS, BACKENDS) if pair[0] != pair[1]]


def _run(backend, *args):
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, str(WORKER), *map(str, args)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """`{(writer, reader): outputs}` for every pair, the writer reading its own files included."""
    root = tmp_path_factory.mktemp("cross_backend")
    sources = {backend: root / backend for backend in BACKENDS}
    for source in sources.values():
        source.mkdir()
    stepped = sources[BACKENDS[0]]
    # Each process writes its own files and reads the earlier writers'; a second pass reads the later ones.
    for i, backend in enumerate(BACKENDS):
        _run(backend, "--make", sources[backend], "--step", stepped, *[sources[w] for w in BACKENDS[:i]])
    for i, backend in enumerate(BACKENDS[:-1]):
        _run(backend, *[sources[w] for w in BACKENDS[i + 1 :]])
    out = {}
    for writer, reader in itertools.product(BACKENDS, BACKENDS):
        loaded = dict(np.load(sources[writer] / f"read_on_{reader}.npz"))
        assert str(loaded.pop("backend")) == reader
        out[writer, reader] = loaded
    return out


def _compare(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        tolerance = 1e-4 if "_step_w" in key else 1e-5
        np.testing.assert_allclose(b[key], a[key], atol=tolerance, rtol=tolerance, err_msg=key)


@pytest.mark.parametrize("writer, reader", PAIRS)
def test_files_written_on_one_backend_give_the_same_numbers_on_another(results, writer, reader):
    written, read = results[writer, writer], results[writer, reader]
    assert any("_map" in key for key in written)
    _compare(written, read)
    # Training mode differs from inference, so the comparison of both can fail.
    assert not np.allclose(written["dcgan_inference_g"], written["dcgan_training_g"], atol=1e-3)


@pytest.mark.parametrize("first, second", [pair for pair in PAIRS if pair[0] < pair[1]])
def test_one_sagan_step_from_the_same_state_and_noise_gives_the_same_weights(results, first, second):
    writer = BACKENDS[0]
    a, b = results[writer, first], results[writer, second]
    steps = sorted(key for key in a if "_step_w" in key)
    assert steps and steps == sorted(key for key in b if "_step_w" in key)
    _compare({key: a[key] for key in steps}, {key: b[key] for key in steps})
    # The step really trained, so the weight comparison can fail.
    assert not np.allclose(a["dcgan_hinge_step_w0"], a["dcgan_wgan-gp_step_w0"], atol=1e-3)
