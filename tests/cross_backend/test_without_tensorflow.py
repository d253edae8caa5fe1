"""`KERAS_BACKEND=jax` or `torch` with TensorFlow absent: the network, SAGAN and a train step work; TF features say so.

The subprocess hides TensorFlow (and tensorflow_datasets, tensorboard) behind a meta-path blocker and
`importlib.util.find_spec` answering None, as on the lent GPU machine, where TensorFlow is not installed.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

BLOCKER = textwrap.dedent(
    """
    import importlib.util
    import sys

    HIDDEN = ("tensorflow", "tensorflow_datasets", "tensorboard")

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoTensorFlow())
    _find_spec = importlib.util.find_spec

    def find_spec(name, package=None):
        # A missing module's spec is None (torch._dynamo probes optional libraries this way).
        return None if name.split(".")[0] in HIDDEN else _find_spec(name, package)

    importlib.util.find_spec = find_spec
    """
)


def _run(code, backend="jax"):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_train_step_runs_without_tensorflow(backend):
    out = _run(
        """
        import numpy as np
        import keras_sagan

        gan = keras_sagan.build_sagan("celeba64", seed=0, image_size=32, conv_dim=8, z_dim=16)
        gan.compile(loss="wgan-gp", ema_decay=0.9)
        images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
        history = gan.fit(images, batch_size=4, epochs=1, verbose=0).history
        assert gan.step == 2 and np.isfinite(history["d_loss"]).all()
        conditional = keras_sagan.build_generator("cifar10_32", conv_dim=8, z_dim=16, num_classes=10)
        assert conditional(np.zeros((2, 16), "float32"), np.array([1, 2]), training=True).shape == (2, 32, 32, 3)
        assert not any(name.split(".")[0] == "tensorflow" for name in sys.modules)
        print("trained", gan.step)
        """,
        backend,
    )
    assert "trained 2" in out


def test_tensorflow_features_fail_when_called_with_one_line():
    out = _run(
        """
        import keras_sagan

        for name in ("export_generator", "train"):
            try:
                getattr(keras_sagan, name)
            except ImportError as err:
                message = str(err)
                assert "\\n" not in message and "needs TensorFlow" in message, message
                print(name, "refused:", message)
        """
    )
    assert out.count("needs TensorFlow") == 2, out
