"""The one place for backend-specific code: which backend runs, its fast paths, and private APIs.

keras_sagan's layers and models are written in `keras.ops` and run on every supported Keras
backend (`SUPPORTED`). What differs per backend lives here and in the modules beside this one:

- `backend/tensorflow.py` (imported only on the TensorFlow backend): the hand-written blocked
  attention with its custom gradient, the fused BatchNorm kernel, `BiasAdd`, and every private
  TensorFlow API the package uses.
- `backend/jax.py` (imported only on the JAX backend): memory-efficient attention (query chunks
  under `jax.checkpoint`, so neither pass holds the whole map), and joining a multi-process run
  (`strategy="multihost"`) with its barriers.
- `backend/torch.py` (imported only on the torch backend): the same chunks under
  `torch.utils.checkpoint`, and the input gradient with its graph kept.
- `backend/distribution.py`: `KerasDistribution`, the strategy of JAX and torch (`keras.distribution`).
- this module: the dispatch functions the layers call, the chief and the barriers of a
  multi-process run (`is_chief`, `wait_for_processes`), `require_tensorflow` for features that need
  TensorFlow, and the one private Keras API (`float32_reads`). The rest of the package asks it
  questions about capabilities (`make_strategy`, `train_step_style`, `strategy_splits_batches`,
  `supports_synchronized_batch_norm`, ...), never which backend runs: `tests/test_architecture.py`
  fails on an `is_<backend>()` call or a backend-name comparison outside `keras_sagan/backend/`.

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


def compile_image_function(function, height: int, width: int):
    """`function` of a float32 `(B, height, width, 3)` image batch, compiled once for any batch size:
    a `tf.function` with that input signature on TensorFlow, `jax.jit` on JAX, `function` itself on torch."""
    if is_tensorflow():
        from keras_sagan.backend import tensorflow as tf_backend

        return tf_backend.compile_image_function(function, height, width)
    if is_jax():
        import jax

        return jax.jit(function)
    return function


def supports_synchronized_batch_norm() -> bool:
    """Whether Keras' `BatchNormalization(synchronized=True)` works here: TensorFlow only. On JAX,
    `keras.distribution` runs one program over global arrays, so batch statistics are global anyway."""
    return is_tensorflow()


def track_checkpoint_names(model, named_layers) -> None:
    """Names `named_layers` (`{name: layer}`) as `model`'s dependencies in `tf.train.Checkpoint`.

    TensorFlow only (`backend/tensorflow.py`); a no-op elsewhere, where checkpoints go through
    Keras' own variable lists. The names keep older runs' checkpoints resumable.
    """
    if is_tensorflow():
        from keras_sagan.backend import tensorflow as tf_backend

        tf_backend.track_checkpoint_names(model, named_layers)


def restores_tensorflow_checkpoints() -> bool:
    """Whether this backend can restore a `tf.train.Checkpoint` into its variables (TensorFlow only)."""
    return is_tensorflow()


def exports_saved_model() -> bool:
    """Whether this process can write a TF Serving SavedModel of its own variables (TensorFlow only);
    the other backends export through a TensorFlow process that loads the weights."""
    return is_tensorflow()


# -- the training step and the strategy ---------------------------------------------------------


def train_step_style() -> str:
    """How this backend's training step takes gradients, which picks `SAGAN`'s train-step mixin:
    `"tape"` (`tf.GradientTape`), `"stateless"` (`jax.value_and_grad` over Keras' stateless calls) or
    `"autograd"` (torch's `backward`)."""
    return {"tensorflow": "tape", "jax": "stateless", "torch": "autograd"}[check_supported()]


def step_compilation() -> str:
    """Whether this backend's training step is XLA-compiled: `"always"` (JAX's `jax.jit`), `"never"` (torch
    runs eagerly; `torch.compile` is not supported) or `"optional"` (TensorFlow's `jit_compile`)."""
    return {"tensorflow": "optional", "jax": "always", "torch": "never"}[check_supported()]


def supports_mixed_float16() -> bool:
    """Whether the training step supports the `"mixed_float16"` policy (loss scaling); not on JAX."""
    return not is_jax()


def make_strategy(name: str, collective_timeout: float | None = None, processes: dict | None = None):
    """This backend's strategy called `name`: a `tf.distribute` strategy on TensorFlow, a
    `KerasDistribution` (`backend/distribution.py`) on JAX and torch.

    Args:
        name: str. `"default"` on every backend; `"mirrored"`, `"multiworker"` and `"tpu"` on
            TensorFlow; `"mirrored"` and `"multihost"` on JAX. Another is a one-line `BackendError`
            saying which work here.
        collective_timeout: float or None. TensorFlow's `"multiworker"` collective timeout.
        processes: dict or None. JAX's `"multihost"` settings (`coordinator_address`,
            `num_processes`, `process_id`, `timeout`; None values come from `KERAS_DISTRIBUTION_*`).

    Returns:
        The strategy: `scope()`, `num_replicas_in_sync` and `extended.should_checkpoint` on every backend.

    Example:

    >>> make_strategy("default").num_replicas_in_sync
    1
    """
    return _own_module().make_strategy(name, collective_timeout, processes)


def strategy_splits_batches() -> bool:
    """Whether the strategy feeds each device its rows of a global batch by itself (`keras.distribution`
    on JAX and torch); on TensorFlow, `training.distributed.distribute_global_batches` must."""
    return not is_tensorflow()


def fit_in_strategy_scope() -> bool:
    """Whether `fit` must run inside the strategy's scope: `keras.distribution` lays out the batches only
    there; a `tf.distribute` model carries the strategy it was built under."""
    return not is_tensorflow()


def peer_kind() -> str:
    """What the members of a multi-machine run are called here: TensorFlow's `"worker"`s (`TF_CONFIG`),
    JAX's `"process"`es."""
    return "worker" if is_tensorflow() else "process"


def every_process_reads_latest_checkpoint() -> bool:
    """Whether every process of a run may list the newest checkpoint once a save returned: on JAX each
    save ends at a barrier after the chief's write; a TensorFlow non-chief worker saves to scratch."""
    return not is_tensorflow()


def _own_module():
    """The running backend's own module (`backend/tensorflow.py`, `jax.py` or `torch.py`), imported on first use."""
    return importlib.import_module(f"keras_sagan.backend.{check_supported()}")


# -- several processes: the chief and the barriers (JAX's `strategy="multihost"`) ---------------


def process_count() -> int:
    """The processes of a multi-process JAX run; 1 alone and on the other backends."""
    if not is_jax():
        return 1
    from keras_sagan.backend import jax as jax_backend

    return jax_backend.process_count()


def gather_from_processes(value: int) -> list[int]:
    """`value` from every process of a multi-process JAX run, in process order (all must call); `[value]` alone."""
    if not is_jax():
        return [int(value)]
    from keras_sagan.backend import jax as jax_backend

    return jax_backend.gather_from_processes(value)


def is_runtime_failure(err: BaseException) -> bool:
    """Whether `err` is the runtime error a cross-process collective raises once a peer died (JAX's
    `JaxRuntimeError`); False on torch, and on TensorFlow, whose strategies raise their own
    (`keras_sagan.training.distributed.WORKER_FAILURES`)."""
    if not is_jax():
        return False
    from keras_sagan.backend import jax as jax_backend

    return jax_backend.is_runtime_failure(err)


def exit_waits_for_processes() -> bool:
    """Whether the interpreter's exit waits at a shutdown barrier for every process (JAX's distributed
    runtime, which then aborts with a C++ stack trace when a peer died): leave with `os._exit` then."""
    return is_jax()


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
