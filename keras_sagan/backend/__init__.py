"""The one place for backend-specific code: which backend runs, its fast paths, and private APIs.

keras_sagan's layers and models are written in `keras.ops` and run on every supported Keras
backend (`SUPPORTED`). What differs per backend lives here and in the two modules beside this one:

- `backend/tensorflow.py` (imported only on the TensorFlow backend): the hand-written blocked
  attention with its custom gradient, the fused BatchNorm kernel, `BiasAdd`, and every private
  TensorFlow API the package uses.
- `backend/jax.py` (imported only on the JAX backend): memory-efficient attention (query chunks
  under `jax.checkpoint`, so neither pass holds the whole map), and joining a multi-process run
  (`strategy="multihost"`) with its barriers.
- `backend/torch.py` (imported only on the torch backend): the same chunks under
  `torch.utils.checkpoint`, and the input gradient with its graph kept.
- this module: the dispatch functions the layers call, the chief and the barriers of a
  multi-process run (`is_chief`, `wait_for_processes`), `require_tensorflow` for features that need
  TensorFlow, and the one private Keras API (`float32_reads`).

Each private API has a comment saying why, and a test in `tests/backend/test_backend_<name>.py` that fails if the
hook breaks with a Keras or TensorFlow upgrade.
"""

from __future__ import annotations

import importlib.util

import keras
from keras import ops

from keras_sagan.errors import UsageError, bad_value

SUPPORTED = ("tensorflow", "jax", "torch")
"""Backends keras_sagan trains and serves on (serving exports go through TensorFlow from the weights)."""


class BackendError(UsageError):
    """A backend, strategy or feature that the running Keras backend cannot provide (one line)."""


def name() -> str:
    """The running Keras backend (`keras.backend.backend()`)."""
    return keras.backend.backend()


def is_tensorflow() -> bool:
    return name() == "tensorflow"


def is_jax() -> bool:
    return name() == "jax"


def is_torch() -> bool:
    return name() == "torch"


def check_supported() -> str:
    """Returns the backend name; raises a one-line `BackendError` for one keras_sagan does not support."""
    backend = name()
    if backend not in SUPPORTED:
        raise BackendError(bad_value("KERAS_BACKEND", backend, f"one of {SUPPORTED}"))
    return backend


def tensorflow_available() -> bool:
    """Whether TensorFlow is importable here (without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def require_tensorflow(feature: str):
    """Imports and returns `tensorflow`, or raises a one-line `BackendError` saying `feature` needs it."""
    if not tensorflow_available():
        raise BackendError(
            f"{feature} needs TensorFlow, which is not installed (pip install tensorflow); "
            f"the Keras backend is {name()}"
        )
    import tensorflow

    return tensorflow


def float32_reads():
    """A context in which variable reads are not autocast to the layer's compute dtype.

    Private Keras API (`keras.src.backend.common.variables.AutocastScope`): under a mixed policy,
    Keras casts float32 variables read inside a layer call to float16/bfloat16, and there is no
    public way to read one in float32 there. The spectral-norm power iteration needs the float32
    kernel. Tested in `tests/backend/test_backend_tensorflow.py`
    (`test_float32_reads_keep_a_variable_float32_inside_a_mixed_layer_call`).
    """
    from keras.src.backend.common.variables import AutocastScope

    return AutocastScope(None)


def bias_add(x, bias, data_format: str = "channels_last"):
    """`x + bias` over the channel axis; TensorFlow's `BiasAdd` op on that backend (see tensorflow.py)."""
    if is_tensorflow():
        from keras_sagan.backend import tensorflow as tf_backend

        return tf_backend.bias_add(x, bias, data_format)
    bias = ops.cast(bias, x.dtype)
    if data_format == "channels_first":
        return x + ops.reshape(bias, (1, -1) + (1,) * (len(x.shape) - 2))
    return x + bias


def attention(queries, keys, values, queries_per_block=None):
    """`softmax(q k^T) v` in float32 without holding the whole map, on this backend's fast path.

    Args:
        queries: `(B, N, Cq)`; keys: `(B, Nk, Cq)`; values: `(B, Nk, C)`.
        queries_per_block: int or None. Queries per chunk; `None` sizes chunks by the backend's
            block size (whole examples while their map fits).

    Returns `(B, N, C)` in `values.dtype`; equals the full computation, gradients included (of
    every order on JAX and torch; the TensorFlow path's hand-written backward pass is itself differentiable).
    """
    if is_tensorflow():
        from keras_sagan.backend import tensorflow as tf_backend

        return tf_backend.blocked_attention(queries, keys, values, queries_per_block)
    if is_jax():
        from keras_sagan.backend import jax as jax_backend

        return jax_backend.chunked_attention(queries, keys, values, queries_per_block)
    if is_torch():
        from keras_sagan.backend import torch as torch_backend

        return torch_backend.chunked_attention(queries, keys, values, queries_per_block)
    return full_attention(queries, keys, values)[0]


def full_attention(queries, keys, values):
    """`(softmax(q k^T) v, map)` in float32 with plain autodiff: the reference every fast path must equal."""
    logits = ops.einsum("bqc,bkc->bqk", ops.cast(queries, "float32"), ops.cast(keys, "float32"))
    attention_map = ops.softmax(logits, axis=-1)
    out = ops.einsum("bqk,bkc->bqc", attention_map, ops.cast(values, "float32"))
    return ops.cast(out, values.dtype), attention_map


def fused_batch_norm(layer, inputs, training, mask):
    """TensorFlow's fused training-mode BatchNorm for `layer`, or None where it does not apply."""
    if not is_tensorflow():
        return None
    from keras_sagan.backend import tensorflow as tf_backend

    return tf_backend.fused_batch_norm(layer, inputs, training, mask)


def num_replicas_in_sync() -> int:
    """Replicas of the running `tf.distribute` replica context; 1 outside one and on other backends.

    On JAX, `keras.distribution.DataParallel` runs one program over global arrays, so every
    computation already sees the global batch.
    """
    if not is_tensorflow():
        return 1
    from keras_sagan.backend import tensorflow as tf_backend

    return tf_backend.num_replicas_in_sync()


def gpu_available() -> bool:
    """Whether this backend sees a GPU."""
    if is_tensorflow():
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if is_jax():
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    if is_torch():
        import torch

        return torch.cuda.is_available()
    return False


def input_gradient(fn, x, has_aux=False):
    """`(d sum(fn(x)) / dx, aux)`: the gradient of a function's summed outputs with respect to its input.

    `fn(x)` returns outputs, or `(outputs, aux)` with `has_aux=True` (aux is None otherwise). The
    result stays differentiable, so a loss built from it can be differentiated again (WGAN-GP):
    a nested `tf.GradientTape` on TensorFlow, `jax.grad` on JAX, `create_graph=True` on torch.
    """
    if is_tensorflow():
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            result = fn(x)
        outputs, aux = result if has_aux else (result, None)
        return tape.gradient(outputs, x), aux
    if is_jax():
        import jax

        def summed(value):
            result = fn(value)
            outputs, aux = result if has_aux else (result, None)
            return ops.sum(outputs), aux

        return jax.grad(summed, has_aux=True)(x)
    if is_torch():
        from keras_sagan.backend import torch as torch_backend

        return torch_backend.input_gradient(fn, x, has_aux)
    raise BackendError(bad_value("KERAS_BACKEND", name(), f"one of {SUPPORTED}"))


def compile_inference(fn):
    """`fn` compiled for repeated inference calls where the backend needs it: a `tf.function` on TensorFlow
    (retraced only for new shapes; eager Keras is several times slower there), `fn` itself on JAX and torch,
    whose eager calls dispatch cached kernels.
    """
    if is_tensorflow():
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    return fn


# -- several processes: the chief and the barriers (JAX's `strategy="multihost"`) ---------------


def process_index() -> int:
    """This process's index in a multi-process JAX run; 0 alone and on the other backends.

    TensorFlow's multi-worker runs name their chief through the strategy instead
    (`keras_sagan.training.distributed.is_chief`).
    """
    if not is_jax():
        return 0
    from keras_sagan.backend import jax as jax_backend

    return jax_backend.process_index()


def is_chief() -> bool:
    """Whether this process writes the run's files: process 0 (always true in a single process)."""
    return process_index() == 0


def wait_for_processes(name: str) -> None:
    """A barrier every process of a multi-process JAX run must reach; a no-op in a single process."""
    if is_jax():
        from keras_sagan.backend import jax as jax_backend

        jax_backend.wait_for_processes(name)


def leave_processes() -> None:
    """Tells the other processes of a multi-process JAX run that this one finished its run (no-op alone)."""
    if is_jax():
        from keras_sagan.backend import jax as jax_backend

        jax_backend.leave_processes()
