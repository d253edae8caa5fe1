"""`train(TrainConfig(...))`: the whole SAGAN training run as one library call.

The run builds the dataset and the SAGAN (under the chosen `tf.distribute` strategy), restores
the latest checkpoint of `model_dir` when there is one, trains with `fit()` until the generator
optimizer's `iterations` reaches `steps`, and exports the sampling generator.

What lands in `model_dir`:

- `config.json`: `{"generator": ..., "discriminator": ..., "train": ...}` configs (what
  `keras_sagan.export` reads to export a checkpoint directory).
- `checkpoints/ckpt-<step>`: generator, discriminator, EMA generator (when on), both optimizers
  (slots and iterations), the noise `SeedGenerator` state and the step.
- `logs/`: TensorBoard event files; `samples/step_XXXXXX.png`: sample grids.
- `export/<version>/`: the TF Serving SavedModel of the sampling generator (see `export_dir`).

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

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # is/disable_op_determinism: not public.

from keras_sagan.data import DATASETS, load_dataset, validate_global_batch
from keras_sagan.export import export_generator, list_versions
from keras_sagan.metrics import EvaluationCallback, InceptionFeatureExtractor, compute_dataset_statistics
from keras_sagan.models.presets import PRESETS, build_discriminator, build_generator, preset_config
from keras_sagan.training import callbacks as callbacks_lib
from keras_sagan.training import distributed
from keras_sagan.training.distributed import WorkerFailure
from keras_sagan.training.sagan import SAGAN

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
DEMO_IMAGE_SIZE = 32
"""Image size used for `dataset="demo"` when `image_size` is not given: the demo faces are 25x25."""
REAL_STATS_FILENAME = "real_stats.npz"
"""Cache, in `model_dir`, of the real-image statistics computed for `eval_every` without `eval_stats`."""
EVAL_BATCH_SIZE = 100
"""Largest batch of images per InceptionV3 call during evaluation."""


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
class TrainConfig:
    """Every setting of a training run; `train(config)` runs it.

    Data:
        dataset: str. `"demo"` (100 LFW faces shipped with scikit-image, offline), `"celeba"`
            (TFDS) or `"folder"` (any image folder). Defaults to `"demo"`.
        data_dir: str or None. TFDS data directory for CelebA. Defaults to TFDS's own.
        image_folder: str or None. The folder for `dataset="folder"`.
        download: bool. Let TFDS download CelebA when it is not in `data_dir`. Defaults to
            `False`: missing data is an error rather than a long (often failing) download.
    Model:
        preset: str. A `keras_sagan.list_presets()` name. Defaults to `"celeba64"`.
        image_size, conv_dim, z_dim, attention_variant: overrides of the preset's values; `None`
            keeps the preset's, except that `image_size` is `32` for the demo dataset.
    Optimisation:
        batch_size: int. Global batch (over all replicas). Defaults to `20`.
        steps: int. Total train steps (G updates), counting restored ones. Defaults to `800`.
            The count is `g_optimizer.iterations`; under `mixed_float16` the updates that loss
            scaling skips (overflowing gradients) are not counted, and a rerun makes them up.
        g_lr, d_lr, beta1, beta2: Adam settings of G and D. Default to the paper's TTUR:
            `1e-4`, `4e-4`, `0.0`, `0.9`.
        d_steps: int. D updates per G update. Defaults to `1`.
        loss: str. `"hinge"`, `"non-saturating"` or `"wgan-gp"`. Defaults to `"hinge"`.
        ema_decay: float or None. EMA of G's weights (sampled and exported); `None` or `0` is off.
    Runtime:
        seed: int. Seeds Keras (weights), the SAGAN's noise, the data order and the sample noise.
        deterministic: bool. `tf.config.experimental.enable_op_determinism()` for the run.
        mixed_precision: str. Keras global dtype policy during the run: `"float32"`,
            `"mixed_bfloat16"` or `"mixed_float16"`.
        jit_compile: bool or `"auto"`. XLA for the train step (`"auto"`: on with a GPU).
        strategy: str. `"default"` (`tf.distribute.get_strategy()`), `"mirrored"` (all GPUs,
            else all logical CPUs), `"multiworker"` (`MultiWorkerMirroredStrategy` over the
            cluster of the `TF_CONFIG` environment variable: all GPUs of every worker, else one
            CPU each; run the same command on every worker) or `"tpu"` (`TPUStrategy` on the TPU
            of a Cloud TPU VM). See BUILD.md, "Distributed training".
        cpu_replicas: int or None. Split the CPU into this many logical devices before TF
            starts (for `"mirrored"` on machines without GPUs, and for tests). Not with
            `"multiworker"` or `"tpu"`.
        collective_timeout: float or None. `"multiworker"` only (ignored otherwise): seconds a
            collective op may wait for the other workers before the run fails. `None` (the
            default) waits without limit; a worker that dies or stops is still detected within
            seconds by TF's coordination-service heartbeats. Set it above the chief's longest
            pause (sample grids, evaluation) to also catch a hung worker.
    Output:
        model_dir: str or None. Run directory; `None` is `runs/<preset>_<dataset>`.
        log_every: int. Steps between progress lines and TensorBoard scalars.
        sample_every: int. Steps between sample grids (PNG and TensorBoard images).
        checkpoint_every: int. Steps between checkpoints (one is also saved at the end).
        keep_checkpoints: int. Checkpoints kept by the `CheckpointManager`.
        export_dir: str or None. TF Serving base path of the exported generator; `None` is
            `<model_dir>/export`, `""` skips the export.
        num_samples: int. Images per sample grid.
        progress_bar: bool. Keras' progress bar instead of the progress lines.
    Evaluation (`keras_sagan.metrics.EvaluationCallback`):
        eval_every: int. Steps between FID/KID/IS evaluations of the sampling generator (the EMA
            one when on), logged as `eval/fid`, `eval/kid` and `eval/is` to `<model_dir>/logs/eval`
            (a separate TensorBoard run: a second event file in `logs/` would stop TensorBoard
            from following the first). `0` (the default) is off.
        eval_num_samples: int. Images generated per evaluation, and real images for the real
            statistics. Defaults to `5000` (the paper uses 50k; ~0.1 s per image on 2 CPU cores).
        eval_stats: str or None. A `.npz` of real statistics (`mu`, `sigma`, and `features` for
            KID), as `python -m keras_sagan evaluate --stats_out` writes. `None` computes them at
            the start of training from up to `eval_num_samples` training images (one pass, no
            repeat: the demo set gives 100) and caches them in `<model_dir>/real_stats.npz`;
            later runs reuse the file while dataset, image size, `eval_num_samples` and weights
            stay the same.
        inception_weights: str or None. Keras' InceptionV3 weights file; `None` looks in the Keras
            cache (`~/.keras/models`). `"random"`: a randomly initialised network, for smoke tests
            only (its numbers mean nothing, and its real statistics are never reused).
    """

    dataset: str = "demo"
    data_dir: str | None = None
    image_folder: str | None = None
    download: bool = False
    preset: str = "celeba64"
    image_size: int | None = None
    conv_dim: int | None = None
    z_dim: int | None = None
    attention_variant: str | None = None
    batch_size: int = 20
    steps: int = 800
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    d_steps: int = 1
    loss: str = "hinge"
    ema_decay: float | None = None
    seed: int = 0
    deterministic: bool = False
    mixed_precision: str = "float32"
    jit_compile: bool | str = "auto"
    strategy: str = "default"
    cpu_replicas: int | None = None
    collective_timeout: float | None = None
    model_dir: str | None = None
    log_every: int = 50
    sample_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    export_dir: str | None = None
    num_samples: int = 64
    progress_bar: bool = False
    eval_every: int = 0
    eval_num_samples: int = 5000
    eval_stats: str | None = None
    inception_weights: str | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; received {self.dataset!r}.")
        if self.dataset == "folder" and not self.image_folder:
            raise ValueError("dataset='folder' needs image_folder (the folder of images to train on).")
        if self.preset not in PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}; available presets: {sorted(PRESETS)}.")
        if self.mixed_precision not in MIXED_PRECISION_POLICIES:
            raise ValueError(
                f"mixed_precision must be one of {MIXED_PRECISION_POLICIES}; received {self.mixed_precision!r}."
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; received {self.strategy!r}.")
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            _check_positive_int(name, getattr(self, name))
        _check_positive_int("num_samples", self.num_samples)
        if self.cpu_replicas is not None:
            _check_positive_int("cpu_replicas", self.cpu_replicas)
            if self.strategy in ("multiworker", "tpu") and self.cpu_replicas > 1:
                raise ValueError(
                    f"cpu_replicas={self.cpu_replicas} cannot be combined with strategy={self.strategy!r}: "
                    "such a run uses one CPU device per worker (start more workers instead)."
                )
        timeout = self.collective_timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"collective_timeout must be None or a number of seconds > 0; received {timeout!r}.")
        for name in ("g_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; received {getattr(self, name)!r}.")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); received {getattr(self, name)!r}.")
        if self.ema_decay == 0:
            self.ema_decay = None
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every must be an int >= 0 (0 = no evaluation); received {self.eval_every!r}.")
        num = self.eval_num_samples
        if isinstance(num, bool) or not isinstance(num, int) or num < 2:
            raise ValueError(f"eval_num_samples must be an int >= 2; received {num!r}.")
        for name in ("eval_stats", "inception_weights"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (str, os.PathLike)) or not os.fspath(value)):
                raise ValueError(f"{name} must be None or a file path; received {value!r}.")

    @property
    def resolved_model_dir(self) -> str:
        return self.model_dir or os.path.join("runs", f"{self.preset}_{self.dataset}")

    @property
    def resolved_export_dir(self) -> str | None:
        if self.export_dir == "":
            return None
        return self.export_dir or os.path.join(self.resolved_model_dir, "export")

    def model_overrides(self) -> dict[str, Any]:
        """The constructor arguments that replace the preset's."""
        overrides = {
            name: getattr(self, name)
            for name in ("image_size", "conv_dim", "z_dim", "attention_variant")
            if getattr(self, name) is not None
        }
        if self.image_size is None and self.dataset == "demo":
            overrides["image_size"] = DEMO_IMAGE_SIZE
        return overrides

    @property
    def resolved_image_size(self) -> int:
        return self.model_overrides().get("image_size", preset_config(self.preset, "generator")["image_size"])


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


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; received {value!r}.")


# -- the pieces of a run, callable on their own ---------------------------------------------------


def configure_cpu_replicas(num_replicas: int) -> None:
    """Splits the first CPU into `num_replicas` logical devices; must run before TF starts.

    Raises `ValueError` when TensorFlow has already initialised with another number of CPUs.
    """
    _check_positive_int("cpu_replicas", num_replicas)
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


def make_strategy(name: str, collective_timeout: float | None = None) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`).

    `"default"`: `tf.distribute.get_strategy()`; `"mirrored"`: all GPUs, else all logical CPUs;
    `"multiworker"`: `MultiWorkerMirroredStrategy` from `TF_CONFIG`, with `collective_timeout`
    (`distributed.make_multiworker_strategy`); `"tpu"`: `TPUStrategy` on the local TPU
    (`distributed.make_tpu_strategy`, a one-line `ValueError` without one).
    """
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
    raise ValueError(f"strategy must be one of {STRATEGIES}; received {name!r}.")


def build_dataset(config: TrainConfig, strategy: tf.distribute.Strategy, seed: int) -> tf.data.Dataset:
    """The infinite, batched training dataset of `config` (global batches of `batch_size`).

    `train` passes it through `distributed.distribute_global_batches` under a strategy other
    than `"default"`.
    """
    kwargs = {
        "image_size": config.resolved_image_size,
        "global_batch_size": config.batch_size,
        "seed": seed,
        "strategy": strategy,
    }
    if config.dataset == "celeba":
        kwargs.update(data_dir=config.data_dir, download=config.download)
    elif config.dataset == "folder":
        kwargs.update(path=config.image_folder)
    return load_dataset(config.dataset, **kwargs)


def build_gan(config: TrainConfig, strategy: tf.distribute.Strategy) -> SAGAN:
    """Builds and compiles the SAGAN of `config` under `strategy` (with the current dtype policy)."""
    overrides = config.model_overrides()
    with strategy.scope():
        gan = SAGAN(
            build_generator(config.preset, **overrides),
            build_discriminator(config.preset, **overrides),
            seed=config.seed,
        )
        gan.compile(
            g_optimizer=keras.optimizers.Adam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2),
            d_optimizer=keras.optimizers.Adam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2),
            loss=config.loss,
            d_steps=config.d_steps,
            ema_decay=config.ema_decay,
            jit_compile=config.jit_compile,
        )
    return gan


def make_checkpoint(gan: SAGAN) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` of every piece of training state of `gan`.

    `step` is `g_optimizer.iterations` itself (saved once, reachable by two names). The
    `SeedGenerator` is not trackable, so its state variable is saved instead.
    """
    objects = {
        "step": gan.g_optimizer.iterations,
        "generator": gan.generator,
        "discriminator": gan.discriminator,
        "g_optimizer": gan.g_optimizer,
        "d_optimizer": gan.d_optimizer,
        "seed_state": gan.seed_generator.state,
    }
    if gan.ema_generator is not None:
        objects["ema_generator"] = gan.ema_generator
    return tf.train.Checkpoint(**objects)


def make_manager(config: TrainConfig, checkpoint: tf.train.Checkpoint) -> tf.train.CheckpointManager:
    """The `CheckpointManager` of `<model_dir>/checkpoints`, keeping `keep_checkpoints`."""
    directory = os.path.join(config.resolved_model_dir, "checkpoints")
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=config.keep_checkpoints)


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager) -> str | None:
    """Restores `manager.latest_checkpoint` into `checkpoint`; returns its path (None: none yet).

    Every object of `checkpoint` must be in the file (a checkpoint may hold more, such as an EMA
    generator the run no longer uses). A mismatch raises a one-line `ValueError`.
    """
    path = manager.latest_checkpoint
    if path is None:
        return None
    try:
        status = checkpoint.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"cannot resume from {path}: it does not match this configuration ({first_line[:300]}); "
            "use another model_dir or the settings the checkpoint was written with"
        ) from None
    return path


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
    model_dir = config.resolved_model_dir
    interrupt = callbacks_lib.InterruptHandler(agree=agree_to_stop)
    if not chief:
        callbacks = [interrupt, callbacks_lib.CheckpointSaver(manager, every=config.checkpoint_every, discard=True)]
        if not config.progress_bar:
            callbacks.insert(1, callbacks_lib.ProgressLogger(config.steps, config.batch_size, every=config.log_every))
        return callbacks
    callbacks = [
        interrupt,
        callbacks_lib.TensorBoardLogger(
            os.path.join(model_dir, "logs"),
            global_batch_size=config.batch_size,
            scalar_every=config.log_every,
            image_every=config.sample_every,
            num_samples=config.num_samples,
            seed=config.seed,
        ),
        callbacks_lib.SampleGridWriter(
            os.path.join(model_dir, "samples"),
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


def make_evaluation_callback(config: TrainConfig) -> EvaluationCallback:
    """The `EvaluationCallback` of `config.eval_*`: builds InceptionV3 and gets the real statistics.

    Raises `ValueError` naming the setting when the weights or `eval_stats` are missing or wrong.
    """
    weights = config.inception_weights
    try:
        extractor = InceptionFeatureExtractor(weights=None if weights == "random" else weights or "imagenet")
    except FileNotFoundError as err:
        raise ValueError(
            f"inception_weights={weights!r}: {err} For training, pass the file as inception_weights "
            "(train_celeba.py: --inception_weights=FILE)."
        ) from None
    if config.eval_stats:
        mu, sigma, features = _read_real_statistics(config.eval_stats)
    else:
        mu, sigma, features = _cached_real_statistics(config, extractor)
    if mu.shape != (extractor.feature_dim,) or sigma.shape != (extractor.feature_dim,) * 2:
        raise ValueError(
            f"eval_stats={config.eval_stats!r} holds mu {mu.shape} and sigma {sigma.shape}; "
            f"the Inception features are {extractor.feature_dim}-d."
        )
    if features is not None and (features.ndim != 2 or features.shape[1] != extractor.feature_dim):
        raise ValueError(
            f"eval_stats={config.eval_stats!r} holds features {features.shape}; expected (n, {extractor.feature_dim})."
        )
    return EvaluationCallback(
        (mu, sigma),
        extractor,
        every_n_steps=config.eval_every,
        num_samples=config.eval_num_samples,
        batch_size=min(EVAL_BATCH_SIZE, config.eval_num_samples),
        log_dir=os.path.join(config.resolved_model_dir, "logs", "eval"),
        real_features_for_kid=features,  # None (an eval_stats file without them): KID is not logged.
        seed=config.seed,
    )


def _read_real_statistics(path):
    """`(mu, sigma, features or None)` from a `.npz` holding `mu` and `sigma` (and `features`)."""
    try:
        with np.load(path) as data:
            if "mu" not in data.files or "sigma" not in data.files:
                raise ValueError(f"it holds {data.files}, not `mu` and `sigma`")
            features = np.asarray(data["features"], np.float32) if "features" in data.files else None
            return np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64), features
    except (OSError, ValueError) as err:
        raise ValueError(f"eval_stats={os.fspath(path)!r}: cannot read real statistics: {err}") from None


def _cached_real_statistics(config, extractor):
    """Real statistics of up to `eval_num_samples` training images, cached in `model_dir`."""
    path = os.path.join(config.resolved_model_dir, REAL_STATS_FILENAME)
    key = json.dumps(
        {
            "dataset": config.dataset,
            "data_dir": config.data_dir,
            "image_folder": config.image_folder,
            "image_size": config.resolved_image_size,
            "num_samples": config.eval_num_samples,
            "inception_weights": config.inception_weights,
        },
        sort_keys=True,
    )
    if config.inception_weights != "random" and os.path.isfile(path):
        with np.load(path) as data:
            if "key" in data.files and str(data["key"]) == key:
                print(f"real statistics for evaluation: {path} ({int(data['count'])} images)", flush=True)
                return data["mu"], data["sigma"], data["features"]
    kwargs = {}
    if config.dataset == "celeba":
        kwargs = {"data_dir": config.data_dir, "download": config.download}
    elif config.dataset == "folder":
        kwargs = {"path": config.image_folder}
    batch = min(EVAL_BATCH_SIZE, config.eval_num_samples)
    dataset = load_dataset(
        config.dataset,
        image_size=config.resolved_image_size,
        global_batch_size=batch,
        seed=config.seed,
        repeat=False,
        **kwargs,
    )
    stats, features = compute_dataset_statistics(
        dataset, extractor, num_samples=config.eval_num_samples, keep_features=config.eval_num_samples
    )
    os.makedirs(config.resolved_model_dir, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:  # A file object: NumPy adds no `.npz` suffix.
        np.savez(f, mu=stats.mean, sigma=stats.covariance, count=np.int64(stats.count), features=features, key=key)
    os.replace(tmp, path)
    print(f"real statistics for evaluation: {stats.count} {config.dataset} images, saved to {path}", flush=True)
    return stats.mean, stats.covariance, features


def export(gan: SAGAN, export_dir: str) -> str:
    """Exports `gan.sampling_generator()` as the next TF Serving SavedModel version under `export_dir`."""
    return export_generator(gan.sampling_generator(), export_dir)


def _write_config(path: str, gan: SAGAN, config: TrainConfig) -> None:
    content = {
        "generator": gan.generator.get_config(),
        "discriminator": gan.discriminator.get_config(),
        "train": dataclasses.asdict(config),
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


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
    determinism_was_on = tf_config.is_op_determinism_enabled()
    try:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        return _train(config)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if config.deterministic and not determinism_was_on:
            tf_config.disable_op_determinism()


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
            checkpoint = tf.train.latest_checkpoint(os.path.join(config.resolved_model_dir, "checkpoints"))
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


def _chief_checkpoint(manager, chief, step):
    """The chief's latest checkpoint; a non-chief names the one the chief saves at `step` (no race)."""
    if chief or step == 0:
        return manager.latest_checkpoint
    return os.path.join(manager.directory, f"ckpt-{step}")


def _run(config, strategy, gan, chief, scratch):
    model_dir = config.resolved_model_dir
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
    if config.strategy != "default":
        # Each replica gets its rows of the same global batches (the single-process batches).
        global_batches = dataset
        dataset = distributed.distribute_global_batches(strategy, lambda: global_batches)
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        _write_config(os.path.join(model_dir, "config.json"), gan, config)
    logs: dict[str, float] = {}
    remaining = config.steps - initial_step
    if remaining > 0:
        save_manager = manager
        if not chief:  # Takes part in every save; its copy is discarded (distributed.py).
            save_manager = tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1)
        agree = distributed.make_stop_agreement(strategy) if workers > 1 else None
        callbacks = make_callbacks(config, save_manager, chief=chief, agree_to_stop=agree)
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
            raise TrainingInterrupted(step, _chief_checkpoint(manager, chief, step), interrupt.interrupted)
    else:
        print(f"already at step {initial_step} >= steps={config.steps}: nothing to train", flush=True)

    export_dir = config.resolved_export_dir if chief else None
    export_path = None
    if export_dir and remaining <= 0 and list_versions(export_dir):
        # A rerun of a finished command: the weights are those of the latest version already.
        export_path = os.path.join(os.path.abspath(export_dir), str(list_versions(export_dir)[-1]))
        print(f"the generator is already exported to {export_path}", flush=True)
    elif export_dir:
        export_path = export(gan, export_dir)
        print(f"exported the generator to {export_path}", flush=True)
    return TrainResult(
        gan=gan,
        step=callbacks_lib.current_step(gan),
        initial_step=initial_step,
        logs=logs,
        checkpoint=_chief_checkpoint(manager, chief, callbacks_lib.current_step(gan)),
        export_path=export_path,
        chief=chief,
    )
