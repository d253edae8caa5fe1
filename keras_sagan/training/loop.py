"""`train(TrainConfig(...))`: the whole SAGAN training run as one library call.

The run builds the dataset and the SAGAN (under the chosen `tf.distribute` strategy), restores
the latest checkpoint of `model_dir` when there is one, trains with `fit()` until the generator
optimizer's `iterations` reaches `steps`, and exports the sampling generator.

What lands in `model_dir` is `keras_sagan.run_directory`'s layout: `config.json`, checkpoints,
TensorBoard logs, sample grids and the TF Serving export of the sampling generator. This module
is the run only: the config is `training/config.py`, the strategy, data and model builders are
`training/builders.py`, the evaluation wiring is `keras_sagan.metrics`.

Resuming: running again with the same `model_dir` continues from the latest checkpoint, up to
`steps` in total. The `tf.data` iterator position is not saved: after a resume the input
pipeline is rebuilt with shuffle seed `seed + restored_step`, so the data order differs from an
uninterrupted run (every other piece of state is restored exactly).

Distributed runs (`strategy="mirrored"`, `"multiworker"`, `"tpu"`) feed each replica its rows of
the same global batches (`distributed.distribute_global_batches`), so they train on exactly the
batches of a single-process run. Under `"multiworker"` only the chief writes files (see
`keras_sagan.training.distributed`), and a failed worker ends the others' runs with
`distributed.WorkerFailure`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

import keras
import tensorflow as tf

from keras_sagan import backend
from keras_sagan.backend import tensorflow as tf_backend
from keras_sagan.data import validate_global_batch
from keras_sagan.export import export_generator
from keras_sagan.metrics import make_evaluation_callback as _make_evaluation_callback
from keras_sagan.run_directory import REAL_STATS_FILENAME, make_checkpoint, restore_latest
from keras_sagan.serving import latest_version_path
from keras_sagan.training import callbacks as callbacks_lib
from keras_sagan.training import distributed
from keras_sagan.training.builders import build_dataset, build_gan, configure_cpu_replicas, data_spec, make_strategy
from keras_sagan.training.config import DEMO_IMAGE_SIZE, MIXED_PRECISION_POLICIES, STRATEGIES, TrainConfig
from keras_sagan.training.distributed import WorkerFailure
from keras_sagan.training.sagan import SAGAN

__all__ = [
    "DEMO_IMAGE_SIZE",
    "MIXED_PRECISION_POLICIES",
    "REAL_STATS_FILENAME",
    "STRATEGIES",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "build_dataset",
    "build_gan",
    "configure_cpu_replicas",
    "make_callbacks",
    "make_checkpoint",
    "make_evaluation_callback",
    "make_manager",
    "make_strategy",
    "restore_latest",
    "train",
]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after a checkpoint was saved.

    Attributes:
        step: int. The step of the saved checkpoint.
        checkpoint: str. Its path prefix.
        signal_name: str. `"SIGINT"` or `"SIGTERM"`; `"peer"` for a worker that stopped because
            another worker received one.
    """

    def __init__(self, step: int, checkpoint: str, signal_name: str):
        cause = "another worker's signal" if signal_name == "peer" else signal_name
        super().__init__(f"{cause} at step {step}; checkpoint saved to {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint
        self.signal_name = signal_name


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        gan: the trained `SAGAN`.
        step: int. The final step.
        initial_step: int. The step restored from a checkpoint (0 for a fresh run).
        logs: dict. The last `fit()` logs (running means over this run), empty if nothing ran.
        checkpoint: str or None. The latest checkpoint path (the chief's, on every worker).
        export_path: str or None. The exported generator's path (None on non-chief workers).
        chief: bool. Whether this process wrote the run's files (False on non-chief workers).
    """

    gan: SAGAN
    step: int
    initial_step: int
    logs: dict[str, float]
    checkpoint: str | None
    export_path: str | None
    chief: bool = True


def make_manager(config: TrainConfig, checkpoint: tf.train.Checkpoint) -> tf.train.CheckpointManager:
    """The `CheckpointManager` of the run's `checkpoints/`, keeping `keep_checkpoints`."""
    return config.run_directory.make_manager(checkpoint, config.keep_checkpoints)


def make_callbacks(
    config: TrainConfig,
    manager: tf.train.CheckpointManager,
    chief: bool = True,
    agree_to_stop: Callable[[bool], bool] | None = None,
) -> list[keras.callbacks.Callback]:
    """The run's callbacks: interrupts, checkpoints, sample PNGs, TensorBoard and progress lines.

    A non-chief worker (`chief=False`) gets the interrupt handler, the progress lines and a
    `CheckpointSaver` that discards its copies (`manager` then points to a scratch directory):
    no TensorBoard logs, sample grids or evaluation. `agree_to_stop` is the interrupt handler's
    all-worker decision (`distributed.make_stop_agreement`).
    """
    run = config.run_directory
    interrupt = callbacks_lib.InterruptHandler(agree=agree_to_stop)
    if not chief:
        callbacks = [interrupt, callbacks_lib.CheckpointSaver(manager, every=config.checkpoint_every, discard=True)]
        if not config.progress_bar:
            callbacks.insert(1, callbacks_lib.ProgressLogger(config.steps, config.batch_size, every=config.log_every))
        return callbacks
    callbacks = [
        interrupt,
        callbacks_lib.TensorBoardLogger(
            run.logs_dir,
            global_batch_size=config.batch_size,
            scalar_every=config.log_every,
            image_every=config.sample_every,
            num_samples=config.num_samples,
            seed=config.seed,
        ),
        callbacks_lib.SampleGridWriter(
            run.samples_dir,
            every=config.sample_every,
            num_samples=config.num_samples,
            seed=config.seed,
        ),
        # Last: it saves at the end, after the other callbacks have seen the final step.
        callbacks_lib.CheckpointSaver(manager, every=config.checkpoint_every),
    ]
    if config.eval_every:
        callbacks.insert(-1, make_evaluation_callback(config))
    if not config.progress_bar:
        callbacks.insert(1, callbacks_lib.ProgressLogger(config.steps, config.batch_size, every=config.log_every))
    return callbacks


def make_evaluation_callback(config: TrainConfig):
    """The `EvaluationCallback` of `config.eval_*` (`keras_sagan.metrics.make_evaluation_callback`)."""
    run = config.run_directory
    return _make_evaluation_callback(
        data_spec(config),
        image_size=config.resolved_image_size,
        every=config.eval_every,
        num_samples=config.eval_num_samples,
        stats_path=config.eval_stats,
        inception_weights=config.inception_weights,
        inception=config.inception,
        cache_path=run.real_stats_path,
        log_dir=run.eval_logs_dir,
        seed=config.seed,
    )


# -- the run -------------------------------------------------------------------------------------


def train(config: TrainConfig) -> TrainResult:
    """Trains a SAGAN as `config` says, resuming from `config.model_dir` when it holds a checkpoint.

    Raises:
        ValueError: a bad setting, missing data (`DatasetNotFoundError`), a batch that does not
            divide across replicas, or a checkpoint that does not match the configuration.
        TrainingInterrupted: SIGINT/SIGTERM arrived during training; a checkpoint was saved.

    Example:

    >>> result = train(TrainConfig(dataset="demo", steps=100, conv_dim=16, model_dir="runs/try"))
    >>> result.step
    100
    """
    if config.cpu_replicas is not None:
        configure_cpu_replicas(config.cpu_replicas)
    previous_policy = keras.config.dtype_policy()
    determinism_was_on = tf_backend.op_determinism_enabled()  # tf.data runs on every backend
    try:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
        if config.deterministic:
            tf_backend.set_op_determinism(True)
        return _train(config)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if config.deterministic and not determinism_was_on:
            tf_backend.set_op_determinism(False)


def _train(config: TrainConfig) -> TrainResult:
    # First: MultiWorkerMirroredStrategy must start its server before TF runs any op.
    strategy = make_strategy(config.strategy, config.collective_timeout)
    validate_global_batch(config.batch_size, strategy.num_replicas_in_sync)  # Before building anything.
    chief = distributed.is_chief(strategy)
    scratch = None if chief else tempfile.mkdtemp(prefix="keras_sagan_worker_")
    try:
        keras.utils.set_random_seed(config.seed)
        gan = build_gan(config, strategy)
        try:
            return _run(config, strategy, gan, chief, scratch)
        except distributed.WORKER_FAILURES as err:
            if not distributed.is_multiworker(strategy):
                raise
            checkpoint = config.run_directory.latest_checkpoint()
            raise WorkerFailure(
                f"multi-worker training stopped at step {callbacks_lib.current_step(gan)}: "
                f"{distributed.describe_failure(err, config.collective_timeout)}; "
                f"restart every worker to resume from {checkpoint or 'the start (no checkpoint yet)'}",
                callbacks_lib.current_step(gan),
                checkpoint,
            ) from None
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _chief_checkpoint(config, manager, chief, step):
    """The chief's latest checkpoint; a non-chief names the one the chief saves at `step` (no race)."""
    if chief or step == 0:
        return manager.latest_checkpoint
    return config.run_directory.checkpoint_path(step)


def _run(config, strategy, gan, chief, scratch):
    model_dir = config.resolved_model_dir
    run = config.run_directory
    worker, workers = distributed.worker_index(strategy)
    checkpoint = make_checkpoint(gan)
    manager = make_manager(config, checkpoint)  # The chief's: every worker restores from it.
    restored = restore_latest(checkpoint, manager)
    initial_step = callbacks_lib.current_step(gan)
    if workers > 1:
        distributed.check_same_step(strategy, initial_step, manager.directory)

    replicas = strategy.num_replicas_in_sync
    print(
        f"{config.preset} at {gan.generator.image_size}x{gan.generator.image_size} on {config.dataset}: "
        f"global batch {config.batch_size} over {replicas} replica(s), model_dir {model_dir}"
        + (f"; worker {worker} of {workers}" + (" (chief)" if chief else "") if workers > 1 else "")
        + (f"; resumed from {restored} at step {initial_step}" if restored else ""),
        flush=True,
    )

    # The tf.data position is not checkpointed: a resumed run re-seeds the order. Built (and so
    # checked for missing data) even when no step remains.
    dataset = build_dataset(config, strategy, config.seed + initial_step)
    if config.strategy != "default" and backend.is_tensorflow():  # keras.distribution shards by itself
        # Each replica gets its rows of the same global batches (the single-process batches).
        global_batches = dataset
        dataset = distributed.distribute_global_batches(strategy, lambda: global_batches)
    if chief:
        run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), config.to_dict())
    logs: dict[str, float] = {}
    remaining = config.steps - initial_step
    if remaining > 0:
        save_manager = manager
        if not chief:  # Takes part in every save; its copy is discarded (distributed.py).
            save_manager = tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1)
        agree = distributed.make_stop_agreement(strategy) if workers > 1 else None
        callbacks = make_callbacks(config, save_manager, chief=chief, agree_to_stop=agree)
        with contextlib.nullcontext() if backend.is_tensorflow() else strategy.scope():
            history = gan.fit(
                dataset,
                epochs=1,
                steps_per_epoch=remaining,
                callbacks=callbacks,
                shuffle=False,  # The dataset shuffles itself.
                verbose=1 if config.progress_bar else 0,
            )
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        interrupt = callbacks[0]
        if interrupt.interrupted is not None:
            step = callbacks_lib.current_step(gan)
            raise TrainingInterrupted(step, _chief_checkpoint(config, manager, chief, step), interrupt.interrupted)
    else:
        print(f"already at step {initial_step} >= steps={config.steps}: nothing to train", flush=True)

    export_dir = config.resolved_export_dir if chief else None
    export_path = None
    latest = latest_version_path(export_dir) if export_dir else None
    if latest and remaining <= 0:
        # A rerun of a finished command: the weights are those of the latest version already.
        export_path = latest
        print(f"the generator is already exported to {export_path}", flush=True)
    elif export_dir and not backend.is_tensorflow():
        export_path = export_through_tensorflow(config.run_directory.path, export_dir)
    elif export_dir:
        export_path = export_generator(gan.sampling_generator(), export_dir)
        print(f"exported the generator to {export_path}", flush=True)
    return TrainResult(
        gan=gan,
        step=callbacks_lib.current_step(gan),
        initial_step=initial_step,
        logs=logs,
        checkpoint=_chief_checkpoint(config, manager, chief, callbacks_lib.current_step(gan)),
        export_path=export_path,
        chief=chief,
    )


def export_through_tensorflow(run_dir: str, export_dir: str) -> str | None:
    """Exports a run trained on another backend to TF Serving, through its weights.

    A SavedModel is a TensorFlow graph, so `keras-sagan export` runs in a TensorFlow-backend
    process that loads the run's newest checkpoint (`.state.npz`) and exports its sampling
    generator. Returns the version path, or None (with a line saying why) when it fails.
    """
    before = set(os.listdir(export_dir)) if os.path.isdir(export_dir) else set()
    command = [sys.executable, "-m", "keras_sagan", "export", "--checkpoint", run_dir, "--out", export_dir]
    result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"not exported ({reason}); run: KERAS_BACKEND=tensorflow {' '.join(command[1:])}", flush=True)
        return None
    added = sorted(set(os.listdir(export_dir)) - before, key=lambda v: int(v) if v.isdigit() else -1)
    path = os.path.join(export_dir, added[-1]) if added else latest_version_path(export_dir)
    print(f"exported the generator to {path} (through TensorFlow, from the run's weights)", flush=True)
    return path
