"""`train(TrainConfig(...))`: the whole SAGAN training run as one library call.

The run builds the dataset and the SAGAN (under the chosen `tf.distribute` strategy), restores
the latest checkpoint of `model_dir` when there is one, trains with `fit()` until the generator
optimizer's `iterations` reaches `steps`, and exports the sampling generator.

What lands in `model_dir` is `keras_sagan.run_directory`'s layout: `config.json`, checkpoints
(`keras_sagan.checkpoint`),
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
`distributed.WorkerFailure`. `"multihost"` is the same on JAX: several processes (one per host)
under `keras.distribution.DataParallel`, process 0 the chief (BUILD.md, "Multi-host JAX").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable

import keras

from keras_sagan import backend
from keras_sagan.backend import tensorflow as tf_backend
from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.data import validate_global_batch
from keras_sagan.export.loading import read_export_step
from keras_sagan.export.saved_model import export_generator, latest_version_path
from keras_sagan.metrics.callback import make_evaluation_callback
from keras_sagan.training import callbacks as callbacks_lib
from keras_sagan.training import distributed, resume
from keras_sagan.training.builders import build_dataset, build_gan, configure_cpu_replicas, data_spec, make_strategy
from keras_sagan.training.config import TrainConfig
from keras_sagan.training.distributed import WorkerFailure
from keras_sagan.training.guard import DivergenceGuard, TrainingDiverged, rollback
from keras_sagan.training.sagan import SAGAN
from keras_sagan.training.steps import current_step
from keras_sagan.training.tensorboard import SampleGridWriter, TensorBoardLogger

__all__ = [
    "ExportInterrupted",
    "TrainResult",
    "TrainingInterrupted",
    "make_callbacks",
    "make_manager",
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


class ExportInterrupted(KeyboardInterrupt):
    """SIGINT arrived during the final export: training is done and checkpointed, the export was not written."""


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


def make_manager(config: TrainConfig, gan, chief: bool = True) -> CheckpointManager:
    """The `CheckpointManager` of the run's `checkpoints/`, keeping `keep_checkpoints`.

    Each checkpoint carries the record the resume rules check (`resume.py`): both networks' configs
    and `config`. Only the chief writes (`chief`: decided once, in `_train`, from the strategy).
    """
    record = {
        "generator": gan.generator.get_config(),
        "discriminator": gan.discriminator.get_config(),
        "train": config.to_dict(),
    }
    return CheckpointManager(gan, config.run_directory.checkpoints_dir, config.keep_checkpoints, chief, record)


def make_callbacks(
    config: TrainConfig,
    manager: CheckpointManager,
    chief: bool = True,
    agree_to_stop: Callable[[bool], bool] | None = None,
    guard: DivergenceGuard | None = None,
) -> list[keras.callbacks.Callback]:
    """The run's callbacks: divergence guard, interrupts, checkpoints, sample PNGs, TensorBoard, progress lines.

    `guard` (a new `DivergenceGuard` when None) comes first, so that after a non-finite step no
    other callback writes anything, and the `CheckpointSaver` saves nothing more.

    A non-chief worker (`chief=False`) gets the interrupt handler, the progress lines and a
    `CheckpointSaver` (its manager takes part in each save and writes nothing): no TensorBoard
    logs, sample grids or evaluation. `agree_to_stop` is the interrupt handler's
    all-worker decision (`distributed.make_stop_agreement`).
    """
    run = config.run_directory
    guard = guard or DivergenceGuard()
    interrupt = callbacks_lib.InterruptHandler(agree=agree_to_stop)
    if not chief:
        saver = callbacks_lib.CheckpointSaver(manager, every=config.checkpoint_every, guard=guard)
        callbacks = [guard, interrupt, saver]
        if not config.progress_bar:
            callbacks.insert(2, callbacks_lib.ProgressLogger(config.steps, config.batch_size, every=config.log_every))
        return callbacks
    callbacks = [
        guard,
        interrupt,
        TensorBoardLogger(
            run.logs_dir,
            global_batch_size=config.batch_size,
            scalar_every=config.log_every,
            image_every=config.sample_every,
            num_samples=config.num_samples,
            seed=config.seed,
        ),
        SampleGridWriter(
            run.samples_dir,
            every=config.sample_every,
            num_samples=config.num_samples,
            seed=config.seed,
        ),
        # Last: it saves at the end, after the other callbacks have seen the final step.
        callbacks_lib.CheckpointSaver(manager, every=config.checkpoint_every, guard=guard),
    ]
    if config.eval_every:
        callbacks.insert(
            -1,
            make_evaluation_callback(
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
            ),
        )
    if not config.progress_bar:
        callbacks.insert(2, callbacks_lib.ProgressLogger(config.steps, config.batch_size, every=config.log_every))
    return callbacks


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
    strategy = make_strategy(config.strategy, config.collective_timeout, _processes(config))
    validate_global_batch(config.batch_size, strategy.num_replicas_in_sync)  # Before building anything.
    # The one decision of which process writes the run's files (checkpoints included).
    chief = distributed.is_chief(strategy)
    # Only the chief writes the run directory, so only it holds the lock (run_lock.py).
    lock = config.run_directory.lock(warn=_warn) if chief else contextlib.nullcontext()
    with lock:
        keras.utils.set_random_seed(config.seed)
        gan = build_gan(config, strategy)
        try:
            result = _run(config, strategy, gan, chief)
            backend.leave_processes()  # Multi-host JAX: shut down in order; a peer's exit is no failure now.
            return result
        except (TrainingInterrupted, ExportInterrupted):  # Every process stopped together (not a second Ctrl-C).
            backend.leave_processes()
            raise
        except Exception as err:
            if not distributed.is_peer_failure(strategy, err):
                raise
            checkpoint = reading.latest_checkpoint(config.run_directory)
            step = _last_good_step(gan, checkpoint)
            kind = f"multi-{backend.peer_kind()}"
            raise WorkerFailure(
                f"{kind} training stopped at step {step}: "
                f"{distributed.describe_failure(err, config.collective_timeout)}; "
                f"restart every worker to resume from {checkpoint or 'the start (no checkpoint yet)'}",
                step,
                checkpoint,
            ) from None


def _last_good_step(gan, checkpoint: str | None) -> int:
    """The step of `gan`; where a failed JAX collective left its variables unreadable, the checkpoint's."""
    try:
        return current_step(gan)
    except Exception:  # The failed step's outputs re-raise its error when read.
        return (reading.checkpoint_step(checkpoint) or 0) if checkpoint else 0


def _processes(config: TrainConfig) -> dict:
    """The multi-process settings of `strategy="multihost"` (`make_strategy`'s `processes`)."""
    return {
        "coordinator_address": config.coordinator_address,
        "num_processes": config.num_processes,
        "process_id": config.process_id,
        "timeout": config.coordinator_timeout,
    }


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _chief_checkpoint(config, manager, chief, step):
    """The chief's latest checkpoint; a non-chief names the one the chief saves at `step` (no race).

    On JAX every process may read the folder: each save ends at a barrier after the chief's write.
    """
    if chief or step == 0 or backend.every_process_reads_latest_checkpoint():
        return manager.latest_checkpoint
    return reading.checkpoint_path(config.run_directory, step)


def _restore(config, run, gan, checkpoint) -> dict:
    """Restores `checkpoint` into `gan` under the resume rules; returns the settings it was saved with."""
    previous = resume.previous_settings(run, checkpoint)
    resume.refuse_ema_start(config, checkpoint)  # Else the restore's mismatch would say less.
    reading.restore_gan(gan, checkpoint)  # Another architecture is refused here, first.
    resume.refuse_changes(config, previous, checkpoint)
    return previous


def _run(config, strategy, gan, chief):
    model_dir = config.resolved_model_dir
    run = config.run_directory
    worker, workers = distributed.worker_index(strategy)
    manager = make_manager(config, gan, chief)  # Every worker restores from the chief's directory.
    opened, previous = reading.open_newest(run, warn=_warn, use=lambda found: _restore(config, run, gan, found))
    restored = opened.path if opened is not None else None
    if restored:
        resume.apply_changes(config, previous, gan, lambda line: print(line, flush=True))
    initial_step = current_step(gan)
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
    if config.strategy != "default" and not backend.strategy_splits_batches():
        # Each replica gets its rows of the same global batches (the single-process batches).
        global_batches = dataset
        dataset = distributed.distribute_global_batches(strategy, lambda: global_batches)
    if chief:
        run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), config.to_dict())
    logs: dict[str, float] = {}
    remaining = config.steps - initial_step
    if remaining > 0:
        agree = distributed.make_stop_agreement(strategy) if workers > 1 else None
        guard = DivergenceGuard(print_fn=lambda line: None)  # TrainingDiverged tells it.
        callbacks = make_callbacks(config, manager, chief=chief, agree_to_stop=agree, guard=guard)
        saver = callbacks[-1]
        for rollbacks in range(config.divergence_rollbacks + 1):
            with strategy.scope() if backend.fit_in_strategy_scope() else contextlib.nullcontext():
                history = gan.fit(
                    dataset,
                    epochs=1,
                    steps_per_epoch=config.steps - current_step(gan),
                    callbacks=callbacks,
                    shuffle=False,  # The dataset shuffles itself.
                    verbose=1 if config.progress_bar else 0,
                )
            if guard.diverged is None:
                break
            good = saver.saved[-1][1] if saver.saved else restored  # The chief's file, on every worker.
            if rollbacks == config.divergence_rollbacks or good is None:
                raise TrainingDiverged(guard.diverged, good, rollbacks)
            g_lr, d_lr = rollback(gan, lambda path: reading.restore_path(gan, path), good)
            config = dataclasses.replace(config, g_lr=g_lr, d_lr=d_lr)
            manager.record["train"] = config.to_dict()
            print(f"{guard.diverged.describe()}: rolled back to {good}; g_lr={g_lr:g}, d_lr={d_lr:g}", flush=True)
            if chief:  # config.json records what runs.
                run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), config.to_dict())
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        interrupt = callbacks[1]
        if interrupt.interrupted is not None:
            step = current_step(gan)
            raise TrainingInterrupted(step, _chief_checkpoint(config, manager, chief, step), interrupt.interrupted)
    else:
        print(f"already at step {initial_step} >= steps={config.steps}: nothing to train", flush=True)

    export_dir = config.resolved_export_dir if chief else None
    export_path = None
    step = current_step(gan)
    latest = latest_version_path(export_dir) if export_dir else None
    if latest and read_export_step(latest) == step:
        # A rerun of a finished command: the latest version holds this very step's weights.
        export_path = latest
        print(f"the generator of step {step} is already exported to {export_path}", flush=True)
    elif export_dir and not backend.exports_saved_model():
        export_path = export_through_tensorflow(config.run_directory.path, export_dir)
    elif export_dir:
        try:
            export_path = export_generator(gan.sampling_generator(), export_dir, step=step)
        except KeyboardInterrupt:
            raise ExportInterrupted(
                f"during the export to {export_dir}: training is done and the checkpoint of step {step} is saved; "
                "rerun the same command to export it"
            ) from None
        print(f"exported the generator of step {step} to {export_path}", flush=True)
    return TrainResult(
        gan=gan,
        step=current_step(gan),
        initial_step=initial_step,
        logs=logs,
        checkpoint=_chief_checkpoint(config, manager, chief, current_step(gan)),
        export_path=export_path,
        chief=chief,
    )


def export_through_tensorflow(run_dir: str, export_dir: str) -> str | None:
    """Exports a run trained on another backend to TF Serving, through its weights.

    A SavedModel is a TensorFlow graph, so `keras-sagan export` runs in a TensorFlow-backend
    process that loads the run's newest checkpoint (`.state.npz`) and exports its sampling
    generator. Returns the version path, or None (with a line saying why) when it fails.
    """
    command = [sys.executable, "-m", "keras_sagan", "export", "--checkpoint", run_dir, "--out", export_dir]
    result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"not exported ({reason}); run: KERAS_BACKEND=tensorflow {' '.join(command[1:])}", flush=True)
        return None
    path = latest_version_path(export_dir)  # the version just written: exports never overwrite
    print(f"exported the generator to {path} (through TensorFlow, from the run's weights)", flush=True)
    return path
