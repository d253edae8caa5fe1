"""The pieces a training run is built from: logical CPUs, the strategy, the dataset and the SAGAN.

Each is callable on its own (the tests and `gan.fit()` users do); `keras_sagan.training.loop.train`
calls them in order.
"""

from __future__ import annotations

import contextlib
import types

import keras

from keras_sagan import backend
from keras_sagan.data import DataSpec
from keras_sagan.errors import bad_value
from keras_sagan.training import distributed
from keras_sagan.training.config import STRATEGIES
from keras_sagan.training.sagan import SAGAN, build_sagan


def configure_cpu_replicas(num_replicas: int) -> None:
    """Splits the first CPU into `num_replicas` logical devices; must run before TF starts.

    Raises `ValueError` when TensorFlow has already initialised with another number of CPUs.
    """
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(bad_value("cpu_replicas", num_replicas, "an int >= 1"))
    tf = backend.require_tensorflow("cpu_replicas")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_replicas)
    except RuntimeError:
        found = len(tf.config.list_logical_devices("CPU"))
        if found != num_replicas:
            raise ValueError(
                f"cpu_replicas={num_replicas} needs to be set before TensorFlow initialises; "
                f"it already runs with {found} logical CPU device(s)."
            ) from None


class KerasDistribution:
    """The part of a `tf.distribute.Strategy`'s interface the run uses, over `keras.distribution`.

    On JAX, `strategy="mirrored"` is `keras.distribution.DataParallel` over every device (all
    GPUs, else the CPU devices, e.g. from `XLA_FLAGS=--xla_force_host_platform_device_count=N`):
    one program over global arrays, so the step needs no replica logic. `"default"` is one device.
    """

    def __init__(self, distribution=None):
        self.distribution = distribution
        # The chief writes the run's files: process 0 of a multi-process run, else the one process.
        self.extended = types.SimpleNamespace(should_checkpoint=backend.is_chief())

    def worker_index(self) -> tuple[int, int]:
        """`(index, count)` of this process among the run's processes; `(0, 1)` alone."""
        if not backend.is_jax():
            return 0, 1
        import jax

        return jax.process_index(), jax.process_count()

    @property
    def num_replicas_in_sync(self) -> int:
        return 1 if self.distribution is None else len(self.distribution.device_mesh.devices.flatten())

    def scope(self):
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()


JAX_STRATEGIES = ("default", "mirrored", "multihost")
"""The strategies that work on JAX; `multiworker` and `tpu` are `tf.distribute` strategies."""

TENSORFLOW_STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
"""The strategies that work on TensorFlow; `multihost` is JAX's multi-process run."""

TORCH_STRATEGIES = ("default",)
"""The strategies that work on torch: Keras 3.15's `keras.distribution` has no torch implementation."""


def make_strategy(name: str, collective_timeout: float | None = None, processes: dict | None = None):
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`); a `KerasDistribution` on JAX.

    `"default"`: `tf.distribute.get_strategy()`; `"mirrored"`: all GPUs, else all logical CPUs;
    `"multiworker"`: `MultiWorkerMirroredStrategy` from `TF_CONFIG`, with `collective_timeout`
    (`distributed.make_multiworker_strategy`); `"tpu"`: `TPUStrategy` on the local TPU
    (`distributed.make_tpu_strategy`, a one-line `ValueError` without one); `"multihost"` (JAX):
    joins the multi-process run `processes` describes (`coordinator_address`, `num_processes`,
    `process_id`, `timeout`; None values come from `KERAS_DISTRIBUTION_*`), then `DataParallel`
    over every process's devices. On JAX only `JAX_STRATEGIES` work, on torch only
    `TORCH_STRATEGIES`, on TensorFlow only `TENSORFLOW_STRATEGIES`; the others are a one-line
    `BackendError`.
    """
    if name not in STRATEGIES:
        raise ValueError(bad_value("strategy", name, f"one of {STRATEGIES}"))
    if backend.is_torch():
        if name not in TORCH_STRATEGIES:
            raise backend.BackendError(
                bad_value(
                    "strategy",
                    name,
                    f"one of {TORCH_STRATEGIES} on the torch backend (Keras 3.15's keras.distribution has no torch "
                    "data parallelism; use KERAS_BACKEND=jax or tensorflow for mirrored, jax for multihost)",
                )
            )
        return KerasDistribution()
    if backend.is_jax():
        if name not in JAX_STRATEGIES:
            raise backend.BackendError(
                bad_value("strategy", name, f"one of {JAX_STRATEGIES} on the jax backend ({name} is TensorFlow's)")
            )
        if name == "default":
            return KerasDistribution()
        import jax

        if name == "multihost":  # First: JAX must join the other processes before it runs anything.
            from keras_sagan.backend import jax as jax_backend

            jax_backend.initialize_processes(**(processes or {}))
            # Every process's devices, process by process: Keras feeds each process its rows.
            return KerasDistribution(keras.distribution.DataParallel(devices=jax.devices()))
        devices = jax.devices("gpu") if backend.gpu_available() else jax.devices("cpu")
        return KerasDistribution(keras.distribution.DataParallel(devices=devices))
    if name == "multihost":
        raise backend.BackendError(
            bad_value(
                "strategy",
                name,
                f"one of {TENSORFLOW_STRATEGIES} on the tensorflow backend (multihost is JAX's multi-process run: "
                "KERAS_BACKEND=jax; on TensorFlow, multiworker runs several hosts through TF_CONFIG)",
            )
        )
    tf = backend.require_tensorflow(f"strategy={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        return distributed.make_multiworker_strategy(collective_timeout)
    if name == "tpu":
        return distributed.make_tpu_strategy()
    raise ValueError(bad_value("strategy", name, f"one of {STRATEGIES}"))


def data_spec(config) -> DataSpec:
    """The `DataSpec` of a `TrainConfig`'s data section."""
    return DataSpec(
        config.dataset, data_dir=config.data_dir, image_folder=config.image_folder, download=config.download
    )


def build_dataset(config, strategy, seed: int):
    """The infinite, batched training dataset of `config` (global batches of `batch_size`).

    `train` passes it through `distributed.distribute_global_batches` under a strategy other
    than `"default"`.
    """
    return data_spec(config).load(
        image_size=config.resolved_image_size,
        global_batch_size=config.batch_size,
        seed=seed,
        strategy=strategy,
        channels=config.resolved_channels,
    )


def build_gan(config, strategy) -> SAGAN:
    """`build_sagan` of `config`'s preset and model settings, under `strategy` (with the current dtype policy),
    compiled with `config`'s optimisation settings."""
    with strategy.scope():
        gan = build_sagan(config.preset, seed=config.seed, **config.model_overrides())
        gan.compile(
            g_optimizer=keras.optimizers.Adam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2),
            d_optimizer=keras.optimizers.Adam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2),
            loss=config.loss,
            d_steps=config.d_steps,
            ema_decay=config.ema_decay,
            ema_statistics=config.ema_statistics,
            jit_compile=config.jit_compile,
        )
    return gan
