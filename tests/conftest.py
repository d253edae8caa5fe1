"""Test-session setup: two logical CPU devices for the distribution tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Logical devices can only be configured before TensorFlow initialises its
# runtime, so it happens here, once, for the whole session. Tests that do not
# use a strategy still run on CPU:0 alone.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # Already initialised by an earlier import; keep going.
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests; deselect locally with -m 'not slow' (CI runs them)")
