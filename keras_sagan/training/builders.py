"""The pieces a training run is built from: logical CPUs, the strategy, the dataset and the SAGAN.

Each is callable on its own (the tests and `gan.fit()` users do); `keras_sagan.training.loop.train`
calls them in order.
"""

from __future__ import annotations

import keras

from keras_sagan import backend
from keras_sagan.data import DataSpec
from keras_sagan.errors import bad_value
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


def make_strategy(name: str, collective_timeout: float | None = None, processes: dict | None = None):
    """The strategy called `name` (one of `STRATEGIES`), as the running backend makes it (`backend.make_strategy`).

    `"default"`: one device (TensorFlow's default strategy); `"mirrored"`: all GPUs, else all
    (logical) CPUs; `"multiworker"`: TensorFlow's `MultiWorkerMirroredStrategy` from `TF_CONFIG`,
    with `collective_timeout`; `"tpu"`: `TPUStrategy` on the local TPU (a one-line `ValueError`
    without one); `"multihost"` (JAX): joins the multi-process run `processes` describes
    (`coordinator_address`, `num_processes`, `process_id`, `timeout`; None values come from
    `KERAS_DISTRIBUTION_*`). A name the backend does not run is a one-line `BackendError`.
    """
    if name not in STRATEGIES:
        raise ValueError(bad_value("strategy", name, f"one of {STRATEGIES}"))
    return backend.make_strategy(name, collective_timeout, processes)


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
