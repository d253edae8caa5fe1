"""Trains a SAGAN on CelebA, an image folder, or (by default, offline) 100 LFW demo faces.

    python examples/train_celeba.py                      # demo: ~3 minutes on 2 CPU cores
    python examples/train_celeba.py --dataset=celeba --data_dir=/data/tfds \\
        --image_size=64 --batch_size=64 --steps=100000 --ema_decay=0.999
    python examples/train_celeba.py --dataset=folder --image_folder=img_align_celeba
    python examples/train_celeba.py --eval_every=1000 --eval_num_samples=5000   # FID/KID/IS in TensorBoard
    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]}, "task": {"type": "worker", "index": 0}}' \\
        python examples/train_celeba.py --strategy=multiworker --model_dir=/shared/run   # index 1 on host1

Rerunning a command resumes from the latest checkpoint in --model_dir. Ctrl-C saves a
checkpoint and exits (exit status 130; 143 for SIGTERM, and for a worker stopped by another
worker's signal). A multi-worker run whose peer died or hung exits with status 1 and a one-line
error; restarting every worker resumes from the chief's latest checkpoint. The script only
defines flags; `keras_sagan.training.loop.train` does the work. `--helpfull` lists the flags
by group.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from keras_sagan.training.distributed import WorkerFailure  # noqa: E402
from keras_sagan.training.loop import STRATEGIES, TrainConfig, TrainingInterrupted, train  # noqa: E402

_GROUP = "train_celeba"


def _bool_or_auto(value: str) -> bool | str:
    return {"auto": "auto", "true": True, "false": False}[value]


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines every flag of this script on `flag_values`, grouped for `--helpfull`."""
    fv = flag_values
    existing = set(fv)

    def group(name):
        return {"flag_values": fv, "module_name": f"{_GROUP} ({name})"}

    data = group("data")
    flags.DEFINE_enum(
        "dataset",
        "demo",
        ["demo", "celeba", "folder"],
        "Training images: 'demo' (100 LFW faces bundled with scikit-image, offline), 'celeba' "
        "(TFDS celeb_a, see --data_dir/--download) or 'folder' (--image_folder).",
        **data,
    )
    flags.DEFINE_string(
        "data_dir", None, "TFDS data directory holding celeb_a (default: TFDS's ~/tensorflow_datasets).", **data
    )
    flags.DEFINE_string(
        "image_folder", None, "Folder of .jpg/.jpeg/.png images for --dataset=folder (searched recursively).", **data
    )
    flags.DEFINE_boolean(
        "download",
        False,
        "Let TFDS download CelebA (~1.4 GB) when --data_dir lacks it; off: missing data is an error.",
        **data,
    )

    model = group("model")
    flags.DEFINE_string("preset", "celeba64", "Model preset (see keras_sagan.list_presets()).", **model)
    flags.DEFINE_integer(
        "image_size", None, "Image side (32, 64, 128); default: the preset's, or 32 for --dataset=demo.", **model
    )
    flags.DEFINE_integer("conv_dim", None, "Base channel count; default: the preset's (64 for celeba64).", **model)
    flags.DEFINE_integer("z_dim", None, "Noise dimension; default: the preset's (128).", **model)
    flags.DEFINE_enum(
        "attention_variant", None, ["sagan", "reference"], "Self-attention block; default: the preset's.", **model
    )

    optim = group("optimisation")
    flags.DEFINE_integer(
        "batch_size", 20, "Global batch size, summed over replicas (must divide across them).", **optim
    )
    flags.DEFINE_integer(
        "steps", 800, "Total train steps (generator updates), counting steps restored from a checkpoint.", **optim
    )
    flags.DEFINE_float("g_lr", 1e-4, "Generator Adam learning rate (the paper's TTUR).", **optim)
    flags.DEFINE_float("d_lr", 4e-4, "Discriminator Adam learning rate (the paper's TTUR).", **optim)
    flags.DEFINE_float("beta1", 0.0, "Adam beta_1 of both optimizers.", **optim)
    flags.DEFINE_float(
        "beta2", 0.9, "Adam beta_2 of both optimizers (the paper's 0.9; Google's code used 0.999).", **optim
    )
    flags.DEFINE_integer("d_steps", 1, "Discriminator updates per generator update.", **optim)
    flags.DEFINE_enum("loss", "hinge", ["hinge", "non-saturating", "wgan-gp"], "Adversarial loss.", **optim)
    flags.DEFINE_float(
        "ema_decay", 0.0, "Decay of an EMA of the generator's weights, sampled and exported; 0 = off.", **optim
    )

    runtime = group("runtime")
    flags.DEFINE_integer("seed", 0, "Seeds weights, noise, data order and the fixed sample noise.", **runtime)
    flags.DEFINE_boolean(
        "deterministic", False, "Enable TF op determinism: same seed, same weights (slower).", **runtime
    )
    flags.DEFINE_enum(
        "mixed_precision",
        "float32",
        ["float32", "mixed_bfloat16", "mixed_float16"],
        "Keras dtype policy. mixed_float16 adds loss scaling; bfloat16 is faster on recent CPUs.",
        **runtime,
    )
    flags.DEFINE_enum(
        "jit_compile", "auto", ["auto", "true", "false"], "XLA-compile the train step; auto: on with a GPU.", **runtime
    )
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(STRATEGIES),
        "tf.distribute strategy. mirrored: all GPUs, else all logical CPUs; multiworker: "
        "MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment variable (run the same "
        "command on every worker; --model_dir on a filesystem all of them share); tpu: TPUStrategy on the "
        "TPU of a Cloud TPU VM.",
        **runtime,
    )
    flags.DEFINE_float(
        "collective_timeout",
        None,
        "--strategy=multiworker: seconds a collective op may wait for the other workers before the run "
        "fails (catches a hung worker); default: no limit (a dead or stopped worker is still caught "
        "within seconds by TF's heartbeats). Set it above the chief's longest pause (samples, evaluation).",
        **runtime,
    )
    flags.DEFINE_integer(
        "cpu_replicas",
        None,
        "Split the CPU into this many logical devices (for --strategy=mirrored without GPUs, and for tests).",
        **runtime,
    )
    flags.DEFINE_boolean(
        "progress_bar", False, "Show Keras' progress bar instead of a log line every --log_every steps.", **runtime
    )

    output = group("output")
    flags.DEFINE_string(
        "model_dir",
        None,
        "Run directory (checkpoints/, logs/, samples/, export/); default runs/<preset>_<dataset>.",
        **output,
    )
    flags.DEFINE_integer("log_every", 50, "Steps between progress lines and TensorBoard scalars.", **output)
    flags.DEFINE_integer(
        "sample_every", 200, "Steps between sample grids (samples/step_XXXXXX.png and TensorBoard images).", **output
    )
    flags.DEFINE_integer(
        "checkpoint_every", 200, "Steps between checkpoints (one is also saved at the end and on Ctrl-C).", **output
    )
    flags.DEFINE_integer("keep_checkpoints", 3, "Number of recent checkpoints kept.", **output)
    flags.DEFINE_string(
        "export_dir",
        None,
        "TF Serving base path of the exported generator; default <model_dir>/export; '' = no export.",
        **output,
    )

    evaluation = group("evaluation")
    flags.DEFINE_integer(
        "eval_every",
        0,
        "Steps between FID/KID/IS evaluations, logged as eval/* to <model_dir>/logs/eval; 0 = off. "
        "Needs Keras' InceptionV3 weights (see --inception_weights).",
        **evaluation,
    )
    flags.DEFINE_integer(
        "eval_num_samples", 5000, "Images generated per evaluation, and real images for the statistics.", **evaluation
    )
    flags.DEFINE_string(
        "eval_stats",
        None,
        "A .npz of real statistics (python -m keras_sagan evaluate --stats_out); default: computed from the "
        "training data at the start and cached in <model_dir>/real_stats.npz.",
        **evaluation,
    )
    flags.DEFINE_string(
        "inception_weights",
        None,
        "Keras InceptionV3 weights .h5 file; default: the Keras cache (~/.keras/models). 'random' = a random "
        "network, for smoke tests only.",
        **evaluation,
    )

    # Also list them under --help (flags of other "modules" only show in --helpfull).
    for name in sorted(set(fv) - existing):
        flags.declare_key_flag(name, flag_values=fv)


def config_from_flags(flag_values: flags.FlagValues) -> TrainConfig:
    """Builds the `TrainConfig` from parsed flags."""
    fv = flag_values
    return TrainConfig(
        dataset=fv.dataset,
        data_dir=fv.data_dir,
        image_folder=fv.image_folder,
        download=fv.download,
        preset=fv.preset,
        image_size=fv.image_size,
        conv_dim=fv.conv_dim,
        z_dim=fv.z_dim,
        attention_variant=fv.attention_variant,
        batch_size=fv.batch_size,
        steps=fv.steps,
        g_lr=fv.g_lr,
        d_lr=fv.d_lr,
        beta1=fv.beta1,
        beta2=fv.beta2,
        d_steps=fv.d_steps,
        loss=fv.loss,
        ema_decay=fv.ema_decay or None,
        seed=fv.seed,
        deterministic=fv.deterministic,
        mixed_precision=fv.mixed_precision,
        jit_compile=_bool_or_auto(fv.jit_compile),
        strategy=fv.strategy,
        cpu_replicas=fv.cpu_replicas,
        collective_timeout=fv.collective_timeout,
        progress_bar=fv.progress_bar,
        model_dir=fv.model_dir,
        log_every=fv.log_every,
        sample_every=fv.sample_every,
        checkpoint_every=fv.checkpoint_every,
        keep_checkpoints=fv.keep_checkpoints,
        export_dir=fv.export_dir,
        eval_every=fv.eval_every,
        eval_num_samples=fv.eval_num_samples,
        eval_stats=fv.eval_stats,
        inception_weights=fv.inception_weights,
    )


def parse(argv: list[str]) -> TrainConfig:
    """Parses `argv` (program name first) on fresh flags; for tests and other scripts."""
    fv = flags.FlagValues()
    define_flags(fv)
    fv(argv)
    return config_from_flags(fv)


def _error(message: str, code: int) -> int:
    lines = str(message).strip().splitlines()
    print(f"error: {lines[0] if lines else message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines on saving, unless asked for.
    try:
        config = config_from_flags(flags.FLAGS)
        train(config)
    except TrainingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr, flush=True)
        # 130 for SIGINT, 143 for SIGTERM and for a worker stopped by another worker's signal.
        name = err.signal_name if err.signal_name in signal.Signals.__members__ else "SIGTERM"
        return 128 + signal.Signals[name].value
    except WorkerFailure as err:
        return _error(err, 1)
    except KeyboardInterrupt:
        print(
            "interrupted: stopped at once (before training began, or a second Ctrl-C); "
            "a rerun resumes from the latest checkpoint, if any",
            file=sys.stderr,
            flush=True,
        )
        return 130
    except ValueError as err:  # Includes DatasetNotFoundError and bad settings.
        return _error(err, 2)
    return 0


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main)
