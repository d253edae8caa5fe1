"""Test-session setup: the backend under test, and two devices for the distribution tests.

The suite runs under the Keras backend that `KERAS_BACKEND` names (TensorFlow by default). CI
runs it three times: everything on TensorFlow, then the layer, model, training and backend tests on
JAX and on torch (`.ci/run`). Tests marked `tensorflow`, `jax` or `torch` run only on that backend.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

if BACKEND == "jax":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # CI has no GPU; skip probing CUDA.
    # Two host devices for keras.distribution.DataParallel; must be set before JAX initialises.
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
else:
    if BACKEND == "torch":
        # Keras' torch backend first: it imports torch._dynamo and so triton, which segfaulted when
        # loaded after TensorFlow (torch 2.14.1, TF 2.21). tf.data still feeds fit() in the tests.
        import keras  # noqa: F401
    import tensorflow as tf

    # Logical devices can only be configured before TensorFlow initialises its
    # runtime, so it happens here, once, for the whole session. Tests that do not
    # use a strategy still run on CPU:0 alone.
    _cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:  # Already initialised by an earlier import; keep going.
        pass


if BACKEND == "torch":
    import torch

    _tensor_numpy = torch.Tensor.numpy

    def _detached_numpy(self, *, force=False):
        return _tensor_numpy(self.detach(), force=force)

    # The tests read layer outputs with NumPy on every backend (np.asarray, .numpy()). Eager layer
    # calls on torch return tensors that carry autograd graphs, which torch refuses to convert;
    # detach first, as keras.ops.convert_to_numpy does. Gradients are taken before any conversion.
    torch.Tensor.numpy = _detached_numpy
    torch.Tensor.__array__ = lambda self, dtype=None, copy=None: np.asarray(_detached_numpy(self.cpu()), dtype=dtype)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests; deselect locally with -m 'not slow' (CI runs them)")
    config.addinivalue_line("markers", "tensorflow: runs only with the TensorFlow backend")
    config.addinivalue_line("markers", "jax: runs only with the JAX backend")
    config.addinivalue_line("markers", "torch: runs only with the torch backend")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in ("tensorflow", "jax", "torch"):
            if item.get_closest_marker(marker) and BACKEND != marker:
                item.add_marker(pytest.mark.skip(reason=f"needs KERAS_BACKEND={marker} (this run: {BACKEND})"))
